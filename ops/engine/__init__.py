"""The offline engine: the unchanged Pulumi program run under mocks (`program`, with the handler of
`offline`), the postgresql provider's own SQL (`provider_sql`), the throwaway Aurora-like cluster
(`pgcluster`) and Umami's container environment (`umami_env`). Used by `ops.rehearse` and `ops.preview`."""
