//! "Did you mean" suggestions.

/// The candidate closest to `name` by edit distance, if close enough to be a
/// plausible typo: at most a third of the name's length, and at least 1
/// for names of four or more characters. A name of three is only matched
/// with its letters swapped (`nrom`-like slips, not `max` for `mix`: a
/// changed letter there is most often another word); shorter names are
/// not guessed.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let length = name.chars().count();
    let limit = if length < 3 { 0 } else { (length / 3).max(1) };
    let plausible = |c: &str| length > 3 || same_letters(name, c);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= limit && *c != name && plausible(c))
        .min_by_key(|(d, c)| (*d, c.to_string()))
        .map(|(_, c)| c)
}

fn same_letters(a: &str, b: &str) -> bool {
    let sorted = |s: &str| {
        let mut chars: Vec<char> = s.chars().collect();
        chars.sort_unstable();
        chars
    };
    sorted(a) == sorted(b)
}

/// Edit distance over chars where swapping two neighbours counts as one
/// edit (optimal string alignment), since `nrom` for `norm` is one slip.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("cosine", "cosine"), 0);
        assert_eq!(edit_distance("nrom", "norm"), 1);
    }

    #[test]
    fn suggests_typos_only() {
        let names = ["cosine", "norm", "distance"];
        assert_eq!(closest("cosin", names), Some("cosine"));
        assert_eq!(closest("nrom", names), Some("norm"));
        assert_eq!(closest("xyzzy", names), None);
        assert_eq!(closest("max", ["mix", "norm"]), None);
        assert_eq!(closest("min", ["mix", "norm"]), None);
        assert_eq!(closest("dto", ["dot", "norm"]), Some("dot"));
        assert_eq!(closest("q", ["a", "b"]), None);
    }
}
