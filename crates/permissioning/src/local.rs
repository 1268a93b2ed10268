//! Local allowlists: `nodes-allowlist` and `accounts-allowlist` of Besu's
//! `permissions_config.toml`, changed over `perm_*` and written back atomically.
