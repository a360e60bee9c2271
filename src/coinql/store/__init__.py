"""Storage: SQLModel tables and async queries. Functions here never commit."""
