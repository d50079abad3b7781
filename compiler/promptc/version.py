"""promptc's version: what ``promptc --version`` prints and every manifest records."""

VERSION = "0.1.0"
