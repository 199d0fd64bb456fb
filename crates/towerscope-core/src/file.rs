//! [`read_capped`]: a file named in configuration, read no further than a limit.

use std::io::{self, Read as _};
use std::path::Path;

/// The bytes of the file at `path`, or an error of kind
/// [`FileTooLarge`](io::ErrorKind::FileTooLarge) (`larger than MAX bytes`) when it holds
/// more than `max`: a path like `/dev/zero`, or a large file named by mistake, must not
/// fill the memory. At most `max + 1` bytes are read.
///
/// ```
/// let err = towerscope_core::read_capped("/dev/zero".as_ref(), 1024).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
/// assert_eq!(err.to_string(), "larger than 1024 bytes");
/// assert!(towerscope_core::read_capped("/dev/null".as_ref(), 1024).unwrap().is_empty());
/// ```
pub fn read_capped(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}
