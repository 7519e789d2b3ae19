"""What turns notes into Anki packages: the identities users' collections depend on (`ids`), the
note types (`notetype`) and the byte-reproducible `.apkg` writer (`package`)."""
