"""The runnable suite: CLI, configs, caching, shards and reports over the library."""
