"""Where events come from: the Unix socket (persisted to the spool first) and the spool itself."""
