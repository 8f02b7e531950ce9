//! `command(cmd, model)`: an external evaluator, run only when the run
//! allows it (`--allow-commands`), since a shared `.tv` file must not start
//! programs by surprise.

use super::{Lowerer, Value};
use crate::diag::{Diagnostic, Span};
use crate::eval::command::CommandSpec;
use crate::graph::Measure;
use std::sync::Arc;

/// What `{model}` stands for in a command.
pub(super) const PLACEHOLDER: &str = "{model}";

impl Lowerer<'_> {
    pub(super) fn command(&mut self, args: &[(Value, Span)]) -> Option<Value> {
        let template = self.string_arg(&args[0], "the command")?;
        let w = self.weights_arg(&args[1], "command")?;
        if !template.contains(PLACEHOLDER) {
            let diag = Diagnostic::new("tv::command", "the command never mentions `{model}`")
                .at(args[0].1, "cannot see the weights")
                .help("`{model}` in the command is replaced by the folder the weights are saved to");
            self.error(diag);
            return None;
        }
        if !self.training.allow_commands {
            let diag = Diagnostic::new(
                "tv::command_refused",
                format!("this program runs a command: `{template}`"),
            )
            .at(args[0].1, "refused")
            .help("tv runs commands only when told to: pass --allow-commands if you trust this program");
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
}
