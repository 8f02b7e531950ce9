//! Tensor specifications: what a node holds, known before any data is read.

use crate::io::{Checkpoint, Dtype};

/// One tensor of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub shape: Vec<usize>,
    /// The dtype of the tensor in the left-most checkpoint: the default
    /// dtype when saved, and the dtype of carried non-float tensors.
    pub dtype: Dtype,
    /// Computed on (f16, bf16, f32, f64) rather than carried through.
    pub float: bool,
    /// False when `only`/`except` made it statically zero.
    pub active: bool,
}

impl Spec {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The tensors of a node, sorted by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Specs {
    pub tensors: Vec<Spec>,
}

/// How two nodes' tensors disagree, for diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    OnlyLeft(String),
    OnlyRight(String),
    Shape(String, Vec<usize>, Vec<usize>),
    Kind(String),
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::OnlyLeft(n) => write!(f, "`{n}` is only on the left"),
            Mismatch::OnlyRight(n) => write!(f, "`{n}` is only on the right"),
            Mismatch::Shape(n, l, r) => write!(f, "`{n}` has shape {l:?} on the left, {r:?} on the right"),
            Mismatch::Kind(n) => write!(f, "`{n}` is floating point on one side only"),
        }
    }
}

impl Specs {
    pub fn of_checkpoint(checkpoint: &Checkpoint) -> Specs {
        let tensors = checkpoint
            .tensors()
            .iter()
            .map(|t| Spec {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype,
                float: t.is_float(),
                active: true,
            })
            .collect();
        Specs { tensors }
    }

    /// Float tensors as training writes them (f32), sorted by name.
    pub fn trained(tensors: impl IntoIterator<Item = (String, Vec<usize>)>) -> Specs {
        let mut tensors: Vec<Spec> = tensors
            .into_iter()
            .map(|(name, shape)| Spec {
                name,
                shape,
                dtype: Dtype::F32,
                float: true,
                active: true,
            })
            .collect();
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        Specs { tensors }
    }

    pub fn find(&self, name: &str) -> Option<&Spec> {
        let i = self.tensors.binary_search_by(|s| s.name.as_str().cmp(name)).ok()?;
        Some(&self.tensors[i])
    }

    /// Elements of the active float tensors: what the reductions range over.
    pub fn numel(&self) -> usize {
        self.tensors
            .iter()
            .filter(|s| s.float && s.active)
            .map(Spec::numel)
            .sum()
    }

    /// Every way `other` differs from `self` (names, shapes, float-ness).
    pub fn mismatches(&self, other: &Specs) -> Vec<Mismatch> {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.tensors, &other.tensors);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(l), Some(r)) if l.name == r.name => {
                    if l.shape != r.shape {
                        out.push(Mismatch::Shape(l.name.clone(), l.shape.clone(), r.shape.clone()));
                    } else if l.float != r.float {
                        out.push(Mismatch::Kind(l.name.clone()));
                    }
                    i += 1;
                    j += 1;
                }
                (Some(l), Some(r)) if l.name < r.name => {
                    out.push(Mismatch::OnlyLeft(l.name.clone()));
                    i += 1;
                }
                (Some(_), Some(r)) | (None, Some(r)) => {
                    out.push(Mismatch::OnlyRight(r.name.clone()));
                    j += 1;
                }
                (Some(l), None) => {
                    out.push(Mismatch::OnlyLeft(l.name.clone()));
                    i += 1;
                }
                (None, None) => break,
            }
        }
        out
    }

    /// The specs after `only` (keep) / `except` (!keep).
    pub fn selected(&self, glob: &str, keep: bool) -> Specs {
        let mut specs = self.clone();
        for spec in &mut specs.tensors {
            spec.active &= glob_match(glob, &spec.name) == keep;
        }
        specs
    }

    /// The specs of a sum: the left operand's, active where any term is.
    pub fn union_active<'a>(first: &Specs, rest: impl Iterator<Item = &'a Specs>) -> Specs {
        let mut specs = first.clone();
        for other in rest {
            for (mine, theirs) in specs.tensors.iter_mut().zip(&other.tensors) {
                mine.active |= theirs.active;
            }
        }
        specs
    }
}

/// `*` matches any run of characters (also none); every other character
/// matches itself.
pub fn glob_match(glob: &str, name: &str) -> bool {
    let mut parts = glob.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("layers.*.weight", "layers.0.weight"));
        assert!(!glob_match("layers.*.weight", "layers.0.bias"));
        assert!(glob_match("*bias", "a.bias"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("a*b*c", "abc"));
        assert!(!glob_match("a*bc*c", "abc"));
        assert!(glob_match("*.*", "x.y"));
        assert!(!glob_match("ab*ba", "aba"));
    }
}
