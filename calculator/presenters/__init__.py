"""Display values for the templates: pure functions of results, no requests or queries."""
