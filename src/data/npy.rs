//! Minimal reader for NumPy `.npy` files (format versions 1-3), enough for PanNuke folds:
//! little-endian numeric arrays read by ranges (a fold's `masks.npy` is several GB, so it is never
//! read whole) and fixed-width string arrays (`<U`, `|S`). Pickled object arrays are refused.

use super::{format_err, io_err};
use crate::Result;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Element type of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// Fixed-width UTF-32 string of this many characters (`<U n`).
    Unicode(usize),
    /// Fixed-width byte string of this many bytes (`|S n`).
    Bytes(usize),
}

impl DType {
    fn parse(descr: &str) -> Option<DType> {
        let (order, rest) = descr.split_at(descr.len().min(1));
        let little = matches!(order, "<" | "|" | "=");
        if !little {
            return None;
        }
        Some(match rest {
            "b1" | "?" => DType::Bool,
            "u1" => DType::U8,
            "i1" => DType::I8,
            "u2" => DType::U16,
            "i2" => DType::I16,
            "u4" => DType::U32,
            "i4" => DType::I32,
            "u8" => DType::U64,
            "i8" => DType::I64,
            "f4" => DType::F32,
            "f8" => DType::F64,
            s if s.starts_with('U') => DType::Unicode(s[1..].parse().ok()?),
            s if s.starts_with('S') => DType::Bytes(s[1..].parse().ok()?),
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
            DType::Unicode(n) => 4 * n,
            DType::Bytes(n) => n,
        }
    }

    pub fn is_numeric(self) -> bool {
        !matches!(self, DType::Unicode(_) | DType::Bytes(_))
    }
}

/// An opened `.npy` file: header parsed, data read on demand.
#[derive(Debug, Clone)]
pub struct NpyArray {
    path: PathBuf,
    dtype: DType,
    shape: Vec<usize>,
    data_offset: u64,
}

/// Value of `'key':` in the header dict, up to the next top-level comma or closing brace.
fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let k1 = format!("'{key}'");
    let k2 = format!("\"{key}\"");
    let start = header
        .find(&k1)
        .map(|i| i + k1.len())
        .or_else(|| header.find(&k2).map(|i| i + k2.len()))?;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for (i, ch) in rest.char_indices() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(ch),
            (None, '(' | '[') => depth += 1,
            (None, ')' | ']') => depth -= 1,
            (None, ',' | '}') if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    None
}

impl NpyArray {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut f = File::open(path).map_err(|e| io_err(path, e))?;
        let mut magic = [0u8; 8];
        f.read_exact(&mut magic)
            .map_err(|_| format_err(path, "too short for a .npy file"))?;
        if &magic[..6] != b"\x93NUMPY" {
            return Err(format_err(path, "not a .npy file (bad magic)"));
        }
        let header_len = match magic[6] {
            1 => {
                let mut b = [0u8; 2];
                f.read_exact(&mut b)
                    .map_err(|_| format_err(path, "truncated header"))?;
                u16::from_le_bytes(b) as usize
            }
            2 | 3 => {
                let mut b = [0u8; 4];
                f.read_exact(&mut b)
                    .map_err(|_| format_err(path, "truncated header"))?;
                u32::from_le_bytes(b) as usize
            }
            v => {
                return Err(format_err(
                    path,
                    format!("unsupported .npy format version {v}"),
                ))
            }
        };
        let prefix = if magic[6] == 1 { 10 } else { 12 };
        let mut hb = vec![0u8; header_len];
        f.read_exact(&mut hb)
            .map_err(|_| format_err(path, "truncated header"))?;
        let header = String::from_utf8_lossy(&hb).into_owned();
        let descr = header_value(&header, "descr")
            .ok_or_else(|| format_err(path, "header has no 'descr'"))?;
        let descr = descr.trim_matches(|c| c == '\'' || c == '"');
        let dtype = DType::parse(descr).ok_or_else(|| {
            if descr.contains('O') {
                format_err(path, "object (pickled) arrays are not supported; re-save it with a fixed-width dtype, e.g. np.save(p, np.asarray(a, dtype=str))")
            } else {
                format_err(path, format!("unsupported dtype '{descr}' (little-endian bool/int/float or fixed-width strings only)"))
            }
        })?;
        let fortran = header_value(&header, "fortran_order")
            .ok_or_else(|| format_err(path, "header has no 'fortran_order'"))?;
        if fortran != "False" {
            return Err(format_err(
                path,
                "Fortran-ordered arrays are not supported; re-save with np.ascontiguousarray",
            ));
        }
        let shape_s = header_value(&header, "shape")
            .ok_or_else(|| format_err(path, "header has no 'shape'"))?;
        let inner = shape_s
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| format_err(path, format!("bad shape '{shape_s}'")))?;
        let shape = inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_end_matches('L').parse::<usize>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| format_err(path, format!("bad shape '{shape_s}'")))?;
        let data_offset = (prefix + header_len) as u64;
        let arr = NpyArray {
            path: path.to_path_buf(),
            dtype,
            shape,
            data_offset,
        };
        let file_len = f.metadata().map_err(|e| io_err(path, e))?.len();
        let need = data_offset + (arr.len() * dtype.size()) as u64;
        if file_len < need {
            return Err(format_err(
                path,
                format!("truncated: {file_len} bytes, the header needs {need}"),
            ));
        }
        Ok(arr)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read_bytes(&self, start: usize, count: usize) -> Result<Vec<u8>> {
        if start + count > self.len() {
            return Err(format_err(
                &self.path,
                format!(
                    "read of elements {start}..{} beyond {}",
                    start + count,
                    self.len()
                ),
            ));
        }
        let size = self.dtype.size();
        let mut f = File::open(&self.path).map_err(|e| io_err(&self.path, e))?;
        f.seek(SeekFrom::Start(self.data_offset + (start * size) as u64))
            .map_err(|e| io_err(&self.path, e))?;
        let mut buf = vec![0u8; count * size];
        f.read_exact(&mut buf).map_err(|e| io_err(&self.path, e))?;
        Ok(buf)
    }

    /// `count` elements from flat (C-order) index `start`, converted to f64.
    pub fn read_f64(&self, start: usize, count: usize) -> Result<Vec<f64>> {
        if !self.dtype.is_numeric() {
            return Err(format_err(
                &self.path,
                "expected a numeric array, found strings",
            ));
        }
        let b = self.read_bytes(start, count)?;
        macro_rules! conv {
            ($t:ty, $n:expr) => {
                b.chunks_exact($n)
                    .map(|c| <$t>::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect()
            };
        }
        Ok(match self.dtype {
            DType::Bool | DType::U8 => b.iter().map(|&x| x as f64).collect(),
            DType::I8 => b.iter().map(|&x| x as i8 as f64).collect(),
            DType::U16 => conv!(u16, 2),
            DType::I16 => conv!(i16, 2),
            DType::U32 => conv!(u32, 4),
            DType::I32 => conv!(i32, 4),
            DType::U64 => conv!(u64, 8),
            DType::I64 => conv!(i64, 8),
            DType::F32 => conv!(f32, 4),
            DType::F64 => conv!(f64, 8),
            DType::Unicode(_) | DType::Bytes(_) => unreachable!(),
        })
    }

    /// All elements of a string array (trailing NULs removed).
    pub fn read_strings(&self) -> Result<Vec<String>> {
        let b = self.read_bytes(0, self.len())?;
        match self.dtype {
            DType::Unicode(n) if n > 0 => b
                .chunks_exact(4 * n)
                .map(|c| {
                    c.chunks_exact(4)
                        .map(|x| u32::from_le_bytes(x.try_into().unwrap()))
                        .take_while(|&u| u != 0)
                        .map(|u| {
                            char::from_u32(u)
                                .ok_or_else(|| format_err(&self.path, "invalid UTF-32 character"))
                        })
                        .collect::<Result<String>>()
                })
                .collect(),
            DType::Bytes(n) if n > 0 => Ok(b
                .chunks_exact(n)
                .map(|c| {
                    let end = c.iter().position(|&x| x == 0).unwrap_or(c.len());
                    String::from_utf8_lossy(&c[..end]).into_owned()
                })
                .collect()),
            DType::Unicode(_) | DType::Bytes(_) => Ok(vec![String::new(); self.len()]),
            _ => Err(format_err(
                &self.path,
                "expected a string array, found numbers",
            )),
        }
    }
}

/// Writes a little-endian `.npy` (version 1) from raw element bytes; used by tests and tools.
pub fn write_npy(
    path: impl AsRef<Path>,
    descr: &str,
    shape: &[usize],
    data: &[u8],
) -> std::io::Result<()> {
    let shape_s = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("csranet-npy-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_numeric_and_strings() {
        let d = tmp("rt");
        let p = d.join("a.npy");
        let vals: Vec<f64> = (0..24).map(|i| i as f64 * 0.5).collect();
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        write_npy(&p, "<f8", &[2, 3, 4], &bytes).unwrap();
        let a = NpyArray::open(&p).unwrap();
        assert_eq!(a.shape(), &[2, 3, 4]);
        assert_eq!(a.dtype(), DType::F64);
        assert_eq!(a.read_f64(5, 3).unwrap(), vec![2.5, 3.0, 3.5]);
        assert!(a.read_f64(22, 3).is_err());
        assert!(a.read_strings().is_err());

        let p = d.join("u2.npy");
        write_npy(&p, "<u2", &[3], &[1, 0, 0, 1, 255, 255]).unwrap();
        assert_eq!(
            NpyArray::open(&p).unwrap().read_f64(0, 3).unwrap(),
            vec![1.0, 256.0, 65535.0]
        );

        let p = d.join("s.npy");
        let mut b = Vec::new();
        for s in ["Colon", "Bile-duct"] {
            let mut chars: Vec<u32> = s.chars().map(|c| c as u32).collect();
            chars.resize(9, 0);
            b.extend(chars.iter().flat_map(|c| c.to_le_bytes()));
        }
        write_npy(&p, "<U9", &[2], &b).unwrap();
        let a = NpyArray::open(&p).unwrap();
        assert_eq!(a.read_strings().unwrap(), vec!["Colon", "Bile-duct"]);
        assert!(a.read_f64(0, 1).is_err());
        let p = d.join("b.npy");
        write_npy(&p, "|S4", &[2], b"Lung\0\0\0\0").unwrap();
        assert_eq!(
            NpyArray::open(&p).unwrap().read_strings().unwrap(),
            vec!["Lung", ""]
        );
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn rejects_bad_files() {
        let d = tmp("bad");
        let p = d.join("x.npy");
        std::fs::write(&p, b"hello world").unwrap();
        assert!(NpyArray::open(&p)
            .unwrap_err()
            .to_string()
            .contains("x.npy"));
        write_npy(&p, "|O", &[2], &[0; 16]).unwrap();
        assert!(NpyArray::open(&p)
            .unwrap_err()
            .to_string()
            .contains("pickled"));
        write_npy(&p, ">f8", &[1], &[0; 8]).unwrap();
        assert!(NpyArray::open(&p)
            .unwrap_err()
            .to_string()
            .contains("unsupported dtype"));
        write_npy(&p, "<f8", &[4], &[0; 8]).unwrap();
        assert!(NpyArray::open(&p)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        let e = NpyArray::open(d.join("missing.npy")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Io, "{e}");
        assert!(e.to_string().ends_with("missing.npy: missing file"), "{e}");
        let e = NpyArray::open(&p).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::BadData, "{e}");
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn header_values() {
        let h = "{'descr': '<U15', 'fortran_order': False, 'shape': (2656, 256, 256, 6), }";
        assert_eq!(header_value(h, "descr"), Some("'<U15'"));
        assert_eq!(header_value(h, "shape"), Some("(2656, 256, 256, 6)"));
        assert_eq!(header_value(h, "fortran_order"), Some("False"));
        assert_eq!(header_value(h, "nope"), None);
    }
}
