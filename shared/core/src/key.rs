//! The one key format, written and read back here only: `<provider>#<tenant>#<rest>` for
//! record keys and subjects, `<provider>#<tenant>` for a tenant's scope (pausing, pacing).
//! Provider names and tenant ids hold no `#` (checked when tenants load), so a key's first
//! two parts are always its provider and tenant.

/// Events about the same person or object of one tenant share a subject (used for erasure).
/// One too long for a key keeps its kind and hashes the rest (`customer:sha256:…`, see
/// [`key_of`]): whoever names the person (a delivery, a fetched detail, an operator's erasure)
/// gets the same subject, on every adapter.
pub fn subject_of(provider: &str, tenant: &str, kind_and_id: &str) -> String {
    let whole = format!("{provider}#{tenant}#{kind_and_id}");
    if whole.len() <= MAX_KEY_BYTES {
        return whole;
    }
    match kind_and_id.split_once(':') {
        Some((kind, id)) if kind.len() <= 64 => {
            key_of(provider, tenant, &format!("{kind}:{}", hashed(id)))
        }
        _ => key_of(provider, tenant, kind_and_id),
    }
}

/// The longest record key or subject, in bytes. DynamoDB refuses a key (of the table or of an
/// index) over 2,048 bytes, and the adapters derive keys from these (`link#<hash>#<key>`,
/// `<provider>##body#…`, `erased#<subject>`, the items of a split event): half of it leaves
/// them room.
pub const MAX_KEY_BYTES: usize = 1024;

/// The longest tenant id, in bytes (checked when the configuration is loaded): with the
/// provider's name and a hashed rest, a key stays within [`MAX_KEY_BYTES`].
pub const MAX_TENANT_ID_BYTES: usize = 256;

/// `<provider>#<tenant>#<rest>`, the form of record keys and subjects; where that would be
/// longer than [`MAX_KEY_BYTES`], `rest` is replaced by its SHA-256 (`sha256:<hex>`), so that
/// every adapter holds the same key and DynamoDB can hold it, whatever a sender wrote.
pub fn key_of(provider: &str, tenant: &str, rest: &str) -> String {
    let whole = format!("{provider}#{tenant}#{rest}");
    if whole.len() <= MAX_KEY_BYTES {
        whole
    } else {
        format!("{provider}#{tenant}#{}", hashed(rest))
    }
}

fn hashed(text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!("sha256:{}", hex::encode(digest))
}

/// The scope of one tenant of a provider: `<provider>#<tenant>` (what is paused, what is
/// paced together).
pub fn tenant_scope(provider: &str, tenant: &str) -> String {
    format!("{provider}#{tenant}")
}

/// A record key, subject or scope read back into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyParts<'a> {
    pub provider: &'a str,
    pub tenant: &'a str,
    /// What follows the tenant (empty for a scope).
    pub rest: &'a str,
}

impl<'a> KeyParts<'a> {
    /// The parts of `key`; None if it names no tenant.
    pub fn of(key: &'a str) -> Option<KeyParts<'a>> {
        let (provider, after) = key.split_once('#')?;
        let (tenant, rest) = after.split_once('#').unwrap_or((after, ""));
        (!provider.is_empty() && !tenant.is_empty()).then_some(KeyParts {
            provider,
            tenant,
            rest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_read_back_into_the_parts_it_was_written_from() {
        let key = key_of("egym", "gym-1", "a#b");
        assert_eq!(
            KeyParts::of(&key),
            Some(KeyParts {
                provider: "egym",
                tenant: "gym-1",
                rest: "a#b"
            })
        );
        let scope = tenant_scope("egym", "gym-1");
        assert_eq!(
            KeyParts::of(&scope).map(|p| (p.tenant, p.rest)),
            Some(("gym-1", ""))
        );
        assert_eq!(KeyParts::of("egym"), None);
        let long = key_of("egym", "gym-1", &"x".repeat(2000));
        assert!(long.len() <= MAX_KEY_BYTES);
        assert!(KeyParts::of(&long).unwrap().rest.starts_with("sha256:"));
    }
}
