//! One streamed pass: every family, tensor by tensor. For each tensor the
//! inputs are fetched from their memory maps once, and one fused loop over
//! its chunks feeds the Gram entries, the direct products and the saves.

use super::atoms::{leaves_under, TensorInputs};
use super::exact::Compensated;
use super::family::Family;
use super::kernel::{self, SaveOut, Source, TensorWork};
use super::nonfinite;
use super::precision::GramMatrix;
use super::save::{carried_bytes, write_error, Saver};
use crate::diag::Diagnostic;
use crate::graph::{Graph, ScalarId, Spec};
use crate::lower::Plan;
use indicatif::ProgressBar;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a pass measured, family by family.
#[derive(Default)]
pub(super) struct PassOutput {
    /// Each family's Gram matrix.
    pub grams: Vec<Arc<GramMatrix>>,
    /// Each family's direct products, in its order.
    pub direct: Vec<Vec<f64>>,
    pub tensors: usize,
}

pub(super) struct Pass<'a> {
    pub plan: &'a Plan,
    pub families: &'a [Family],
    pub savers: &'a [Saver],
    pub progress: bool,
    pub backend: &'a super::Backend,
    /// Shown beside the progress bar, e.g. "pass 1, 1000 sweep points".
    pub label: String,
    /// The value of each coefficient (all known by this pass).
    pub coef: &'a dyn Fn(ScalarId) -> f64,
}

impl Pass<'_> {
    pub fn run(&self) -> Result<PassOutput, Diagnostic> {
        let bar = match self.progress {
            true => crate::report::progress::bytes(self.input_bytes(), &self.label),
            false => ProgressBar::hidden(),
        };
        let mut output = PassOutput::default();
        for family in self.families {
            self.run_family(family, &bar, &mut output)?;
        }
        bar.finish_and_clear();
        Ok(output)
    }

    fn graph(&self) -> &Graph {
        &self.plan.graph
    }

    /// Bytes of float tensors the pass reads, for the progress bar.
    fn input_bytes(&self) -> u64 {
        self.families.iter().map(|f| read_bytes(self.graph(), f)).sum()
    }

    fn run_family(&self, family: &Family, bar: &ProgressBar, output: &mut PassOutput) -> Result<(), Diagnostic> {
        // Tensors' sums are added with compensation, so the error bound of
        // an entry does not grow with the number of tensors.
        let mut gram = vec![Compensated::default(); family.pairs.len()];
        let mut direct = vec![Compensated::default(); family.direct.len()];
        let specs = self.graph().specs(family.atoms[0]).clone();
        let mut largest = 0;
        for (index, spec) in specs.tensors.iter().enumerate() {
            if !spec.float {
                self.carry(family, index, spec)?;
                continue;
            }
            let (sums, bytes) = self.tensor(family, index, spec)?;
            gram.iter_mut().zip(sums.gram).for_each(|(t, s)| t.add(s));
            direct.iter_mut().zip(sums.direct).for_each(|(t, s)| t.add(s));
            largest = largest.max(spec.numel());
            output.tensors += 1;
            bar.inc(bytes);
        }
        let entries: Vec<f64> = gram.into_iter().map(Compensated::value).collect();
        output.grams.push(Arc::new(GramMatrix::new(
            family.atoms.len(),
            family.reference,
            &family.pairs,
            &entries,
            self.backend.entry_error(largest),
        )));
        output.direct.push(direct.into_iter().map(Compensated::value).collect());
        Ok(())
    }

    /// One float tensor of a family; returns its sums and the input bytes read.
    fn tensor(&self, family: &Family, index: usize, spec: &Spec) -> Result<(kernel::TensorSums, u64), Diagnostic> {
        let mut inputs = TensorInputs::new(self.graph(), self.coef, &spec.name);
        inputs.prepare(&family.atoms);
        let sources: Vec<Source> = family.atoms.iter().map(|atom| inputs.source(*atom)).collect();
        let bytes = inputs.bytes_fetched();
        let non_finite: Vec<AtomicBool> = family.saves.iter().map(|_| AtomicBool::new(false)).collect();
        let emits: Vec<_> = family
            .saves
            .iter()
            .map(|s| {
                let saver = &self.savers[s.save];
                move |offset: usize, bytes: &[u8]| saver.writer.write_part(index, offset, bytes)
            })
            .collect();
        let saves = family
            .saves
            .iter()
            .zip(&emits)
            .zip(&non_finite)
            .map(|((s, emit), flag)| SaveOut {
                coefs: &s.coefs,
                dtype: self.savers[s.save].infos[index].dtype,
                emit,
                non_finite: flag,
            })
            .collect();
        let work = TensorWork {
            sources,
            reference: family.reference,
            pairs: &family.pairs,
            direct: family.direct.iter().map(|p| (p.a.as_slice(), p.b.as_slice())).collect(),
            saves,
        };
        let sums = self
            .backend
            .run(&work, spec.numel())
            .map_err(|e| self.save_error(family, &e))?;
        let flagged: Vec<bool> = non_finite.iter().map(|f| f.load(Ordering::Relaxed)).collect();
        self.explain_non_finite(family, index, spec, &sums, &flagged);
        Ok((sums, bytes))
    }

    /// Warns about where inf or NaN in this tensor's sums or saves came
    /// from: the inputs holding them, else each save that made them.
    fn explain_non_finite(
        &self,
        family: &Family,
        index: usize,
        spec: &Spec,
        sums: &kernel::TensorSums,
        flagged: &[bool],
    ) {
        let in_sums = sums.gram.iter().chain(&sums.direct).any(|v| !v.is_finite());
        if !in_sums && !flagged.contains(&true) {
            return;
        }
        if nonfinite::warn_inputs(self.graph(), &family.atoms, &spec.name) {
            return;
        }
        for (save, _) in family.saves.iter().zip(flagged).filter(|(_, f)| **f) {
            let dtype = self.savers[save.save].infos[index].dtype;
            let path = &self.plan.saves[save.save].path;
            nonfinite::warn_save(path, &spec.name, dtype, &save.coefs);
        }
    }

    /// A non-float tensor goes to every save unchanged, from the left-most
    /// checkpoint of its expression.
    fn carry(&self, family: &Family, index: usize, spec: &Spec) -> Result<(), Diagnostic> {
        for save in &family.saves {
            let job = &self.plan.saves[save.save];
            let bytes = carried_bytes(self.graph(), job.node, &spec.name);
            let written = self.savers[save.save].writer.write(index, bytes);
            written.map_err(|e| write_error(job.span, &job.path, &e))?;
        }
        Ok(())
    }

    fn save_error(&self, family: &Family, error: &crate::io::IoError) -> Diagnostic {
        let job = family.saves.first().map(|s| &self.plan.saves[s.save]);
        match job {
            Some(job) => write_error(job.span, &job.path, error),
            None => Diagnostic::new("tv::compute", error.to_string()),
        }
    }
}

/// Float bytes of the checkpoints a family reads: each checkpoint's own,
/// once.
pub(super) fn read_bytes(graph: &Graph, family: &Family) -> u64 {
    let mut leaves = Vec::new();
    family.atoms.iter().for_each(|a| leaves_under(graph, *a, &mut leaves));
    leaves.sort();
    leaves.dedup();
    leaves.into_iter().map(|l| graph.leaf_float_bytes(l)).sum()
}
