"""The stages after fetch: intake, requests, staff commands, replies, the sweep; each is given a Session."""
