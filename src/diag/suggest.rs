//! "Did you mean" suggestions.

/// The candidate closest to `name` by edit distance, if close enough to be a
/// plausible typo: at most a third of the name's length, and at least 1
/// for names of three or more characters (shorter names are not guessed).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let length = name.chars().count();
    let limit = if length < 3 { 0 } else { (length / 3).max(1) };
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= limit && *c != name)
        .min_by_key(|(d, c)| (*d, c.to_string()))
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("cosine", "cosine"), 0);
    }

    #[test]
    fn suggests_typos_only() {
        let names = ["cosine", "norm", "distance"];
        assert_eq!(closest("cosin", names), Some("cosine"));
        assert_eq!(closest("nrom", names), Some("norm"));
        assert_eq!(closest("xyzzy", names), None);
        assert_eq!(closest("q", ["a", "b"]), None);
    }
}
