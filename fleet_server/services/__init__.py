"""Domain logic on a SQLAlchemy session, free of HTTP: the API routers and the CLI's direct-DB path call these."""
