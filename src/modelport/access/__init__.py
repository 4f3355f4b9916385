"""Access control: API keys, roles and the scopes they grant."""
