"""Every SQL statement of the orders service, one module per area: orders (the lifecycle and the events that move
it), catalogue (directions and currencies), accounts (customer accounts and sessions), partners (the partner
programme). Functions take the service's Database (or a cursor, to run inside the caller's transaction) and
answer wire forms (schemas.py); the rules they apply are in domain/."""
