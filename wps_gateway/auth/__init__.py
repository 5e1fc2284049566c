"""Who is asking: identities, roles, and what each may see (``[auth]``)."""
