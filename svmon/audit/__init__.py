"""The auditor's tools: the journal's hash chain, replay, verification and exports."""
