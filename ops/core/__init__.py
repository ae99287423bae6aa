"""The plumbing every command shares: database logins and connections (`db`), AWS clients (`aws`),
credentials from the outputs, secrets or the environment (`credentials`), the stack outputs
parsed into the contract (`outputs`), the command-line conventions (`cli`), `errors`,
`jsonfile`, `private_file` and the report toolkit (`reporting`)."""
