//! The report as it is written: in memory while small, then in an
//! anonymous temporary file, so a sweep of a hundred million rows never
//! holds its table in memory. It is delivered (to stdout or the `-o`
//! file) only when the run commits.

use std::io::{Seek, SeekFrom, Write};

/// Bytes kept in memory before the report moves to a temporary file.
const IN_MEMORY: usize = 16 << 20;

#[derive(Debug, Default)]
pub struct Spool {
    memory: Vec<u8>,
    file: Option<std::fs::File>,
    /// The first bytes written, where the header line is.
    head: Vec<u8>,
    /// The digest of all bytes written, for the run record.
    digester: super::record::Digester,
}

/// Bytes kept of the report's beginning.
const HEAD: usize = 1 << 16;

impl Write for Spool {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = match &mut self.file {
            Some(file) => file.write(bytes)?,
            None => {
                self.memory.extend_from_slice(bytes);
                if self.memory.len() > IN_MEMORY {
                    let mut file = tempfile::tempfile()?;
                    file.write_all(&self.memory)?;
                    self.memory = Vec::new();
                    self.file = Some(file);
                }
                bytes.len()
            }
        };
        let bytes = &bytes[..written];
        let room = HEAD.saturating_sub(self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..room]);
        self.digester.update(bytes);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl Spool {
    /// A spool that writes everything into `file` (the staged `-o` file).
    pub fn into_file(file: std::fs::File) -> Spool {
        Spool {
            file: Some(file),
            ..Spool::default()
        }
    }

    /// Copies the whole report to `out`.
    pub fn copy_to(&self, out: &mut dyn Write) -> std::io::Result<()> {
        match &self.file {
            None => out.write_all(&self.memory),
            Some(file) => {
                let mut file = file.try_clone()?;
                file.seek(SeekFrom::Start(0))?;
                std::io::copy(&mut file, out).map(|_| ())
            }
        }
    }

    /// The report's text (for callers that want it whole).
    pub fn text(&self) -> String {
        let mut bytes = Vec::new();
        if self.copy_to(&mut bytes).is_err() {
            return String::new();
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The digest of everything written, for the run record.
    pub fn digest(&self) -> super::record::ReportDigest {
        self.digester.digest()
    }

    /// Its first line, for recognising an earlier report at the target.
    pub fn header(&self) -> String {
        let line = self.head.split(|b| *b == b'\n').next().unwrap_or_default();
        String::from_utf8_lossy(line).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_reports_move_to_a_file_and_read_back_whole() {
        let mut spool = Spool::default();
        spool.write_all(b"a,b\n").unwrap();
        let row = b"1,2\n".repeat(1 << 20);
        for _ in 0..5 {
            spool.write_all(&row).unwrap();
        }
        assert!(spool.file.is_some());
        assert_eq!(spool.header(), "a,b");
        let text = spool.text();
        assert_eq!(text.len(), 4 + 5 * row.len());
        assert!(text.starts_with("a,b\n1,2\n") && text.ends_with("1,2\n"));
    }
}
