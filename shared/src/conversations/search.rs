//! What the `q` of the conversation list means, and how it meets the search-terms index.
//!
//! The migration stores every suffix (cut to [`TERM_LEN`] characters) of each customer's
//! lower-cased, space-collapsed name and of the digits of their phone. A query is normalised
//! the same way; "contains q" is then "some term starts with q", a range on a C-collated btree.

/// Terms longer than this are cut in the index; longer queries are rechecked on the row.
pub const TERM_LEN: usize = 32;
pub const MAX_QUERY_CHARS: usize = 100;

/// A normalised search, ready for the terms index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm {
    /// The (possibly cut) prefix to look up: `term >= prefix AND term < upper`.
    pub prefix: String,
    pub upper: String,
    /// The whole normalised query, when it is longer than what the index holds.
    pub full: Option<String>,
    pub kind: SearchKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKind {
    /// Only digits and phone punctuation: matched against phone digits.
    Phone,
    Name,
}

impl SearchTerm {
    /// `None` when `q` holds nothing searchable (only spaces or punctuation).
    pub fn parse(q: &str) -> Option<Self> {
        let is_phone_like = q.chars().any(|c| c.is_ascii_digit())
            && q.chars().all(|c| {
                c.is_ascii_digit() || matches!(c, '+' | '(' | ')' | '-' | '.' | ' ' | '/')
            });
        let (normalised, kind) = if is_phone_like {
            (
                q.chars().filter(char::is_ascii_digit).collect::<String>(),
                SearchKind::Phone,
            )
        } else {
            (
                // NUL separates like a space: no stored name holds one (Postgres text cannot).
                q.split(|c: char| c.is_whitespace() || c == '\0')
                    .filter(|word| !word.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase(),
                SearchKind::Name,
            )
        };
        if normalised.is_empty() {
            return None;
        }
        let prefix: String = normalised.chars().take(TERM_LEN).collect();
        let full = (prefix.len() < normalised.len()).then_some(normalised);
        let upper = upper_bound(&prefix);
        Some(Self {
            prefix,
            upper,
            full,
            kind,
        })
    }
}

/// The smallest string greater than every string starting with `prefix` (byte order, as the
/// C collation compares): the last character bumped by one code point.
fn upper_bound(prefix: &str) -> String {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        // Skip the surrogate range, which `char` cannot hold.
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return chars.into_iter().collect();
        }
    }
    // Only U+10FFFF characters: no upper bound exists; this one sorts above any real text.
    "\u{10FFFF}\u{10FFFF}".repeat(TERM_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_queries_keep_only_digits() {
        let t = SearchTerm::parse("+44 (20) 7946-0018").unwrap();
        assert_eq!(t.kind, SearchKind::Phone);
        assert_eq!(t.prefix, "442079460018");
        assert_eq!(t.upper, "442079460019");
    }

    #[test]
    fn names_are_lowercased_and_spaces_collapsed() {
        let t = SearchTerm::parse("  Ana   MARÍA ").unwrap();
        assert_eq!(t.kind, SearchKind::Name);
        assert_eq!(t.prefix, "ana maría");
        assert_eq!(t.upper, "ana maríb");
    }

    #[test]
    fn nothing_searchable_is_none() {
        assert_eq!(SearchTerm::parse("   "), None);
    }

    #[test]
    fn long_queries_are_cut_for_the_index_and_kept_for_the_recheck() {
        let q = "a".repeat(40);
        let t = SearchTerm::parse(&q).unwrap();
        assert_eq!(t.prefix.len(), TERM_LEN);
        assert_eq!(t.full.as_deref(), Some(q.as_str()));
    }

    #[test]
    fn upper_bound_steps_over_surrogates() {
        assert_eq!(upper_bound("a\u{D7FF}"), "a\u{E000}");
    }
}
