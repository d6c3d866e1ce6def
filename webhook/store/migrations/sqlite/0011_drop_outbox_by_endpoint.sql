-- An endpoint's deliveries are listed newest first a page at a time (the admin page and
-- GET .../deliveries), which walks the primary key backwards and stops after a page; deleting
-- an endpoint (rare) scans the outbox. Without this index every change announced to an
-- endpoint writes one index entry fewer inside the consent transaction, on the webhook's hot
-- path (issue 12: throughput with one endpoint against none).
DROP INDEX IF EXISTS outbox_by_endpoint;
