//! Reading the small files a program names (programs, configs, data,
//! texts) without surprises: a pipe, device or socket is refused before it
//! is opened (opening a pipe waits for a writer, `/dev/zero` never ends),
//! and a file larger than its kind allows is refused before it is read.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

/// Programs and the files they `use`.
pub const PROGRAM_LIMIT: u64 = 10 << 20;
/// `config.json` and other metadata.
pub const CONFIG_LIMIT: u64 = 64 << 20;
/// Datasets and evaluation texts.
pub const DATA_LIMIT: u64 = 4 << 30;

/// Fails unless `path` is a regular file (following symbolic links).
pub fn check_regular(path: &Path) -> io::Result<fs::Metadata> {
    let meta = fs::metadata(path)?;
    if meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "it is a folder, not a file",
        ));
    }
    if !meta.is_file() {
        let message = "it is not a regular file (a pipe, device or socket)";
        return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    }
    Ok(meta)
}

/// The bytes of the regular file `path`, at most `limit` of them.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let meta = check_regular(path)?;
    if meta.len() > limit {
        let message = format!(
            "at {} it is larger than the {} allowed",
            human(meta.len()),
            human(limit)
        );
        return Err(io::Error::new(io::ErrorKind::FileTooLarge, message));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // Bounded even if the file grows while it is read.
    fs::File::open(path)?.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The UTF-8 text of the regular file `path`, at most `limit` bytes.
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_regular(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "it is not UTF-8 text"))
}

fn human(bytes: u64) -> String {
    super::human_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_folders_and_large_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        fs::write(&file, "hello").unwrap();
        assert_eq!(read_text(&file, 5).unwrap(), "hello");
        assert_eq!(read_regular(&file, 4).unwrap_err().kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(
            read_regular(dir.path(), 4).unwrap_err().kind(),
            io::ErrorKind::IsADirectory
        );
        assert_eq!(
            read_regular(Path::new("/dev/zero"), 4).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        fs::write(&file, [0xff, 0xfe]).unwrap();
        assert_eq!(read_text(&file, 5).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
