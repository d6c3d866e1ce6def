"""Provider adapters: turn a provider's requests into core values and outcomes into its replies."""
