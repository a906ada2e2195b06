"""Development tooling, not shipped in the wheel: the native stack supervisor (`python -m tools.stack`) and the
demo (`python -m tools.demo`). Run from the checkout's root."""
