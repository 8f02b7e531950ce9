//! `use`: bringing another file's definitions into scope.

use super::env::{Env, Frame};
use super::Lowerer;
use crate::diag::{closest, Diagnostic, FileId};
use crate::syntax::ast::Spanned;
use std::path::PathBuf;

impl Lowerer<'_> {
    pub(super) fn use_stmt(&mut self, env: &mut Env, path: &Spanned<String>) {
        let Some(file) = self.module_file(env, path) else {
            return;
        };
        if self.loading.contains(&file) || file == self.root {
            let start = self.loading.iter().position(|f| *f == file).unwrap_or(0);
            let mut chain: Vec<FileId> = if file == self.root { vec![self.root] } else { Vec::new() };
            chain.extend(&self.loading[start..]);
            chain.push(file);
            let names: Vec<&str> = chain.iter().map(|f| self.sources.get(*f).name.as_str()).collect();
            let diag = Diagnostic::new("tv::import_cycle", format!("import cycle: {}", names.join(" -> ")))
                .at(path.span, "imported again here")
                .help("files brought in with `use` must not import each other in a circle");
            self.error(diag);
            return;
        }
        if !self.modules.contains_key(&file) {
            self.lower_module(file);
        }
        let mut exported: Vec<_> = self.modules[&file]
            .names
            .iter()
            .filter(|(_, b)| !b.imported)
            .map(|(name, b)| (name.clone(), b.clone()))
            .collect();
        exported.sort_by_key(|(_, b)| b.span.start);
        for (name, binding) in exported {
            let imported = super::env::Binding {
                bound: binding.bound,
                span: path.span,
                imported: true,
            };
            self.bind_binding(env, &name, imported);
        }
    }

    /// The file `use "..."` names, loaded into the sources if new.
    fn module_file(&mut self, env: &Env, path: &Spanned<String>) -> Option<FileId> {
        if let Some(name) = path.node.strip_prefix("std/") {
            let name = name.trim_end_matches(".tv");
            let shown = format!("std/{name}");
            if let Some(id) = self.sources.find_name(&shown) {
                return Some(id);
            }
            let Some(text) = crate::stdlib::source(name) else {
                let mut diag = Diagnostic::new("tv::unknown_module", format!("no standard module `{shown}`"))
                    .at(path.span, "not in the standard library");
                let names = crate::stdlib::MODULES.iter().map(|(n, _)| *n);
                diag = match closest(name, names) {
                    Some(near) => diag.help(format!("did you mean \"std/{near}\"?")),
                    None => diag.help(format!("the standard modules are {}", crate::stdlib::list())),
                };
                self.error(diag);
                return None;
            };
            return Some(self.sources.add(shown, None, text.to_string()));
        }
        let importer_dir = self
            .sources
            .get(env.file)
            .path
            .as_ref()
            .and_then(|p| p.parent().map(PathBuf::from));
        let on_disk = importer_dir.unwrap_or_else(|| self.base_dir.clone()).join(&path.node);
        if let Some(id) = self.sources.find_path(&on_disk) {
            return Some(id);
        }
        match crate::io::bounded::read_text(&on_disk, crate::io::bounded::PROGRAM_LIMIT) {
            Ok(text) => Some(self.sources.add(on_disk.display().to_string(), Some(on_disk), text)),
            Err(e) => {
                let diag = Diagnostic::new(
                    "tv::missing_file",
                    format!("cannot read \"{}\": {e}", on_disk.display()),
                )
                .at(path.span, "imported here")
                .help("paths in `use` are relative to the file that holds the `use`");
                self.error(diag);
                None
            }
        }
    }

    fn lower_module(&mut self, file: FileId) {
        self.modules.insert(file, Frame::default());
        let text = self.sources.get(file).text.clone();
        match crate::syntax::parse(file, &text) {
            Ok(program) => {
                self.loading.push(file);
                self.stmts(&mut Env::new(file), &program.stmts);
                self.loading.pop();
            }
            Err(diag) => self.error(diag),
        }
    }
}
