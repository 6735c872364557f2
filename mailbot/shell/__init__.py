"""I/O only: the database, the store and its one persist step, the mailbox, the outbox and SMTP."""
