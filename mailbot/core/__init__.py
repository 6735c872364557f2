"""The pure core: no Session, no socket, no environment; `now` is passed in."""
