ALTER TABLE tenants DROP COLUMN phone_region;
