"""Node providers: where a pool's machines come from (EC2, or the lab's engines)."""
