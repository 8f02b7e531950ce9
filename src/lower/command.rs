//! `command(cmd, model)`: an external evaluator, run only when the run
//! allows it (`--allow-commands`), since a shared `.tv` file must not start
//! programs by surprise. The weights are the `model` argument, named
//! `{model}` in the command, or the weights interpolated into it.

use super::{Lowerer, Value};
use crate::diag::{Diagnostic, Span};
use crate::eval::command::{CommandSpec, PLACEHOLDER};
use crate::graph::{Measure, NodeId};
use std::sync::Arc;

impl Lowerer<'_> {
    /// `command("... {model} ...", w)`, or `command("... {w} ...")` with
    /// the weights interpolated.
    pub(super) fn command(&mut self, args: &[(Value, Span)]) -> Option<Value> {
        let template = self.string_arg(&args[0], "the command")?;
        let w = match self.is_known_nan(&args[1].0) {
            true => self.interpolated_weights(args[0].1)?,
            false => self.weights_arg(&args[1], "command")?,
        };
        if !template.contains(PLACEHOLDER) {
            let diag = Diagnostic::new("tv::command", "the command never mentions `{model}`")
                .at(args[0].1, "cannot see the weights")
                .help("`{model}` in the command is replaced by the folder the weights are saved to");
            self.error(diag);
            return None;
        }
        let spec = CommandSpec {
            template,
            dir: match self.base_dir.as_os_str().is_empty() {
                true => std::path::PathBuf::from("."),
                false => self.base_dir.clone(),
            },
            span: args[0].1,
        };
        if !self.training.allow_commands {
            let message = format!("this program runs a command: `{}`", spec.shown());
            let diag = Diagnostic::new("tv::command_refused", message)
                .at(args[0].1, "refused")
                .help("tv runs commands only when told to: pass --allow-commands if you trust this program");
            self.error(diag);
            return None;
        }
        let index = match self.graph.commands.iter().position(|c| **c == spec) {
            Some(index) => index,
            None => {
                self.graph.commands.push(Arc::new(spec));
                self.graph.commands.len() - 1
            }
        };
        let measure = Measure::Command {
            node: w,
            command: index,
        };
        Some(Value::Num(self.graph.measured(measure)))
    }

    /// The one set of weights interpolated into a command without a
    /// `model` argument.
    fn interpolated_weights(&mut self, span: Span) -> Option<NodeId> {
        let mut weights = std::mem::take(&mut self.command_weights);
        weights.dedup();
        match weights[..] {
            [w] => Some(w),
            [] => {
                let diag = Diagnostic::new("tv::command", "the command receives no weights")
                    .at(span, "no weights here")
                    .help("write `{model}` and pass the weights, command(\"eval {model}\", theta), or interpolate them, command(\"eval {theta}\")");
                self.error(diag);
                None
            }
            _ => {
                let diag = Diagnostic::new("tv::command", "a command receives one set of weights")
                    .at(span, "more than one here")
                    .help("evaluate each with its own command(...)");
                self.error(diag);
                None
            }
        }
    }
}
