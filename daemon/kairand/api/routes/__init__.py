"""Route handlers, one module per route group (api.roles.ROUTES names them)."""
