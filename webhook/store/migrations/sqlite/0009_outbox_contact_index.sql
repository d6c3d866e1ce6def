-- One index on (address, lane, id) instead of two (the pending deliveries of a contact on a
-- lane, for order; a contact's deliveries, for erasure): every change announced to an
-- endpoint writes one index entry fewer inside the consent transaction (issue 12, speed).
-- A contact's delivered rows are few, so the order check reads them and skips them.

CREATE INDEX IF NOT EXISTS outbox_by_contact ON outbox (address, lane, id);
DROP INDEX IF EXISTS outbox_order;
DROP INDEX IF EXISTS outbox_by_address;
