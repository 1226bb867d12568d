-- Editing customers (`PATCH /api/customers/{id}`): a phone number typed without a country code
-- is read in the tenant's region (ISO 3166-1 alpha-2); without one, such a number is refused.
ALTER TABLE tenants ADD COLUMN phone_region text CHECK (phone_region ~ '^[A-Z]{2}$');
