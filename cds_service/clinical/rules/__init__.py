"""Rule families: one module each, pure functions of a RuleContext."""
