//! Kubernetes names (RFC 1123), checked before any call: what a resource or flag names must be
//! a name the API server would accept.

/// A label (RFC 1123): lower-case letters, digits and '-', 63 at most, a letter or digit at
/// each end. Namespaces and Services are named so.
pub fn is_label(text: &str) -> bool {
    (1..=63).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// A subdomain (RFC 1123): labels joined by '.', 253 characters at most. Most objects are
/// named so.
pub fn is_subdomain(text: &str) -> bool {
    (1..=253).contains(&text.len()) && text.split('.').all(|label| !label.is_empty() && is_label(label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert!(is_label("sales-1") && !is_label("Sales") && !is_label("-a") && !is_label("a-"));
        assert!(!is_label("a.b") && !is_label("") && !is_label(&"a".repeat(64)));
        assert!(is_subdomain("consumer.v2") && !is_subdomain("a..b") && !is_subdomain(".a"));
        assert!(!is_subdomain(&"a".repeat(254)) && is_subdomain(&vec!["a".repeat(63); 3].join(".")));
    }
}
