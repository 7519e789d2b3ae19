"""What relates a build to what users already have: the plan (mod times, note ids, guards,
versions, the changelog), the manifest of dist/, the identity ledger, and publishing, the only
writer of dist/."""
