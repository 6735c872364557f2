"""What is filed and published: the mbox archive, documents, reports, personal data."""
