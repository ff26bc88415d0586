//! Normalisation of forwarded request paths before route rules are matched.
//!
//! A rule on `/admin` must not be dodged with `/x/../admin`, `//admin` or `/%61dmin`, so
//! the path is percent-decoded and its dot segments resolved the way an origin server
//! would before any prefix comparison.

/// The normalised form of `path`, or `None` if it cannot be a request path (no leading
/// slash, bad percent-encoding, an encoded slash or control character, or `..` above
/// the root).
pub fn normalize(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let decoded = percent_decode(path)?;
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || (decoded.ends_with('/') && !segments.is_empty()) {
        out.push('/');
    }
    Some(out)
}

fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            let byte = u8::from_str_radix(hex, 16).ok()?;
            if byte == b'/' || byte == b'\\' || byte.is_ascii_control() {
                return None;
            }
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn resolves_tricks_that_would_dodge_a_prefix_rule() {
        assert_eq!(normalize("/x/../admin").as_deref(), Some("/admin"));
        assert_eq!(
            normalize("//admin/./users").as_deref(),
            Some("/admin/users")
        );
        assert_eq!(normalize("/%61dmin").as_deref(), Some("/admin"));
        assert_eq!(normalize("/api/").as_deref(), Some("/api/"));
        assert_eq!(normalize("/").as_deref(), Some("/"));
    }

    #[test]
    fn refuses_paths_that_cannot_be_matched_safely() {
        assert_eq!(normalize("/../etc"), None);
        assert_eq!(normalize("/a%2fb"), None);
        assert_eq!(normalize("/bad%zz"), None);
        assert_eq!(normalize("relative"), None);
    }
}
