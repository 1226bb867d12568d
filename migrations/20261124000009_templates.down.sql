DROP FUNCTION whatsapp_account_tenants();
DROP TABLE templates;
DROP TABLE whatsapp_accounts;
