//! Class names and display colours of a model's outputs.
//!
//! A [`Classes`] names and colours each output class of a network, index = class id, index 0
//! the background. It travels with the weights (the `csranet.classes` metadata of a
//! safetensors file, see [`crate::io::weights`]) and is what the CLI's table, the GeoJSON, the
//! overlay pictures, the C ABI (`csra_model_class_name`, `csra_model_class_colour`) and the
//! Java and QuPath bindings show.
//!
//! Weights without it get [`Classes::defaults`]: CoNSeP's names for 5 classes, PanNuke's for
//! 6, `class N` otherwise, coloured by [`default_colour`].
//!
//! QuPath keeps its own colour for the classes it predefines ("Other", "Tumor", ...): a
//! detection of class "Other" is drawn in QuPath's colour whatever colour the file gives.
//! The default colours of those names are therefore QuPath's ([`QUPATH_CLASSES`]), so that
//! the overlay pictures and QuPath agree; names are matched after [`title_case`], the form
//! in which they are written to QuPath.

use candle_core::Result;
use serde::{Deserialize, Serialize};
use std::ffi::{CStr, CString};

/// CoNSeP's classes as merged by its authors (5 classes, background included).
pub const CONSEP_NAMES: [&str; 5] = [
    "background",
    "other",
    "inflammatory",
    "epithelial",
    "spindle-shaped",
];

/// The classes QuPath predefines with a colour of its own (QuPath 0.4 to 0.6:
/// `PathClass.StandardPathClasses`, and "Positive"/"Negative", whose default colours are
/// (200, 50, 50) and (90, 90, 180) scaled by 1.25 and truncated). QuPath ignores the colour
/// an imported object gives such a class.
pub const QUPATH_CLASSES: [(&str, [u8; 3]); 10] = [
    ("Tumor", [200, 0, 0]),
    ("Stroma", [150, 200, 150]),
    ("Immune cells", [160, 90, 160]),
    ("Ignore*", [180, 180, 180]),
    ("Image", [128, 128, 128]),
    ("Necrosis", [50, 50, 50]),
    ("Other", [255, 200, 0]),
    ("Region*", [0, 0, 180]),
    ("Positive", [250, 62, 62]),
    ("Negative", [112, 112, 225]),
];

/// Colours of nucleus types by (lower-case) name, so that a type has the same colour in every
/// dataset; none of these names is one QuPath predefines. Chosen to stand out on H&E.
const NAMED_COLOURS: [(&str, [u8; 3]); 9] = [
    ("background", [0, 0, 0]),
    ("miscellaneous", [255, 230, 0]),
    ("inflammatory", [0, 210, 0]),
    ("epithelial", [255, 140, 0]),
    ("spindle-shaped", [0, 200, 255]),
    ("spindle", [0, 200, 255]),
    ("neoplastic", [235, 20, 20]),
    ("connective", [0, 120, 255]),
    ("dead", [255, 0, 255]),
];

/// Colours of classes with other names, by class id (`1 + (id - 1) % 8`).
const PALETTE: [[u8; 3]; 8] = [
    [255, 230, 0],
    [0, 255, 0],
    [0, 220, 255],
    [255, 140, 0],
    [255, 0, 255],
    [255, 255, 255],
    [255, 40, 40],
    [0, 120, 255],
];

/// `name` with its first letter upper-cased: the form in which class names are written for
/// QuPath (GeoJSON, the QuPath extension) and shown in the CLI's tables.
pub fn title_case(name: &str) -> String {
    let mut c = name.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// QuPath's own colour for `name` when QuPath predefines a class of that name (exact,
/// case-sensitive match, as QuPath's), else `None`.
pub fn qupath_colour(name: &str) -> Option<[u8; 3]> {
    QUPATH_CLASSES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
}

/// The default colour of class `id` named `name`: QuPath's colour when [`title_case`]`(name)`
/// is a class QuPath predefines, else a fixed colour per known nucleus type, else black for
/// id 0 and a palette colour by id.
pub fn default_colour(id: usize, name: &str) -> [u8; 3] {
    if let Some(c) = qupath_colour(&title_case(name)) {
        return c;
    }
    let lower = name.to_lowercase();
    if let Some((_, c)) = NAMED_COLOURS.iter().find(|(n, _)| *n == lower) {
        return *c;
    }
    if id == 0 {
        [0, 0, 0]
    } else {
        PALETTE[(id - 1) % PALETTE.len()]
    }
}

/// The default names of a model with `num_classes` outputs: CoNSeP's when 5, PanNuke's when
/// 6, otherwise `background` then `class 1`, `class 2`, ...
pub fn default_names(num_classes: usize) -> Vec<String> {
    let known: &[&str] = match num_classes {
        5 => &CONSEP_NAMES,
        6 => &crate::data::pannuke::CLASS_NAMES,
        _ => &[],
    };
    (0..num_classes)
        .map(|c| match known.get(c) {
            Some(n) => n.to_string(),
            None if c == 0 => "background".into(),
            None => format!("class {c}"),
        })
        .collect()
}

/// Names and RGB colours of a model's classes, index = class id, index 0 the background.
///
/// Every name is non-empty UTF-8 without NUL characters (checked on construction), so it
/// is also available as a C string ([`Classes::c_name`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classes {
    names: Vec<String>,
    colours: Vec<[u8; 3]>,
    /// `names` as NUL-terminated strings, for the C ABI.
    c_names: Vec<CString>,
}

/// One class in the metadata JSON; `colour` may be left out (then the default colour).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    colour: Option<[u8; 3]>,
}

impl Classes {
    /// Classes with the given names and colours (the same number of each, at least one).
    /// Errors name the first bad class: an empty name, a name with a NUL character, or
    /// differing counts.
    pub fn new(names: Vec<String>, colours: Vec<[u8; 3]>) -> Result<Self> {
        if names.is_empty() {
            return Err(crate::Error::invalid("no class names given").into());
        }
        if names.len() != colours.len() {
            return Err(crate::Error::invalid(format!(
                "{} class names but {} colours; give one colour per class",
                names.len(),
                colours.len()
            ))
            .into());
        }
        let mut c_names = Vec::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() {
                return Err(crate::Error::invalid(format!("class {i} has an empty name")).into());
            }
            match CString::new(n.as_str()) {
                Ok(c) => c_names.push(c),
                Err(_) => {
                    return Err(crate::Error::invalid(format!(
                        "the name of class {i} ({n:?}) contains a NUL character"
                    ))
                    .into())
                }
            }
        }
        Ok(Self {
            names,
            colours,
            c_names,
        })
    }

    /// Classes with the given names, coloured by [`default_colour`].
    pub fn with_default_colours(names: Vec<String>) -> Result<Self> {
        let colours = names
            .iter()
            .enumerate()
            .map(|(i, n)| default_colour(i, n))
            .collect();
        Self::new(names, colours)
    }

    /// The defaults for a model with `num_classes` outputs (at least 1): [`default_names`]
    /// coloured by [`default_colour`].
    pub fn defaults(num_classes: usize) -> Self {
        Self::with_default_colours(default_names(num_classes.max(1)))
            .expect("default class names are valid")
    }

    /// Number of classes, background included.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false: there is at least the background class.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The names, index = class id.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The RGB colours, index = class id.
    pub fn colours(&self) -> &[[u8; 3]] {
        &self.colours
    }

    /// The name of class `id`, `None` past the last class.
    pub fn name(&self, id: usize) -> Option<&str> {
        self.names.get(id).map(String::as_str)
    }

    /// The colour of class `id`, `None` past the last class.
    pub fn colour(&self, id: usize) -> Option<[u8; 3]> {
        self.colours.get(id).copied()
    }

    /// The name of class `id` as a NUL-terminated string, `None` past the last class.
    pub fn c_name(&self, id: usize) -> Option<&CStr> {
        self.c_names.get(id).map(CString::as_c_str)
    }

    /// The names as written for QuPath ([`title_case`]), index = class id.
    pub fn qupath_names(&self) -> Vec<String> {
        self.names.iter().map(|n| title_case(n)).collect()
    }

    /// The same names with new colours (one per class).
    pub fn with_colours(&self, colours: Vec<[u8; 3]>) -> Result<Self> {
        Self::new(self.names.clone(), colours)
    }

    /// An error unless there are exactly `num_classes` classes.
    pub fn check_count(&self, num_classes: usize) -> Result<()> {
        if self.len() != num_classes {
            return Err(crate::Error::invalid(format!(
                "{} class names given, the model has {num_classes} classes (background \
                 included, class 0)",
                self.len()
            ))
            .into());
        }
        Ok(())
    }

    /// The JSON stored in the weights' metadata: `[{"name": ..., "colour": [r, g, b]}, ...]`.
    pub fn to_json(&self) -> String {
        let entries: Vec<Entry> = self
            .names
            .iter()
            .zip(&self.colours)
            .map(|(n, c)| Entry {
                name: n.clone(),
                colour: Some(*c),
            })
            .collect();
        serde_json::to_string(&entries).expect("class entries serialise")
    }

    /// Parses [`Classes::to_json`]'s format (a missing `colour` gets the default colour) and
    /// validates it as [`Classes::new`] does.
    pub fn from_json(json: &str) -> Result<Self> {
        let entries: Vec<Entry> = serde_json::from_str(json).map_err(|e| {
            candle_core::Error::Msg(format!(
                "expected a list of {{\"name\": string, \"colour\": [r, g, b]}}: {e}"
            ))
        })?;
        let colours = entries
            .iter()
            .enumerate()
            .map(|(i, e)| e.colour.unwrap_or_else(|| default_colour(i, &e.name)))
            .collect();
        Self::new(entries.into_iter().map(|e| e.name).collect(), colours)
    }
}

/// Parses a comma-separated list of colours, each `RRGGBB` in hexadecimal with an optional
/// leading `#` (e.g. `#000000,#ffc800,00d200`).
pub fn parse_colours(list: &str) -> Result<Vec<[u8; 3]>> {
    list.split(',')
        .enumerate()
        .map(|(i, s)| {
            let s = s.trim();
            let hex = s.strip_prefix('#').unwrap_or(s);
            let bad = || {
                candle_core::Error::Msg(format!(
                    "colour {i} ({s:?}) is not RRGGBB in hexadecimal (e.g. #ffc800)"
                ))
            };
            if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            let byte = |k: usize| u8::from_str_radix(&hex[k..k + 2], 16).map_err(|_| bad());
            Ok([byte(0)?, byte(2)?, byte(4)?])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_class_count() {
        let c = Classes::defaults(5);
        assert_eq!(c.names(), CONSEP_NAMES.map(String::from));
        let p = Classes::defaults(6);
        assert_eq!(
            p.names(),
            crate::data::pannuke::CLASS_NAMES.map(String::from)
        );
        let g = Classes::defaults(3);
        assert_eq!(g.names(), ["background", "class 1", "class 2"]);
        assert_eq!(g.colours(), [[0, 0, 0], PALETTE[0], PALETTE[1]]);
        assert_eq!(c.len(), 5);
        assert_eq!(c.name(4), Some("spindle-shaped"));
        assert_eq!(c.name(5), None);
        assert_eq!(c.c_name(2).unwrap().to_str().unwrap(), "inflammatory");
        assert!(c.c_name(5).is_none());
        assert_eq!(c.colour(0), Some([0, 0, 0]));
        assert_eq!(c.colour(5), None);
    }

    #[test]
    fn qupath_predefined_names_get_qupath_colours() {
        // QuPath's "Other" is (255, 200, 0); CoNSeP's "other" is written as "Other".
        assert_eq!(Classes::defaults(5).colour(1), Some([255, 200, 0]));
        for (name, colour) in QUPATH_CLASSES {
            assert_eq!(default_colour(3, name), colour, "{name}");
            // Lower-case names reach QuPath title-cased, so they match too.
            assert_eq!(default_colour(3, &name.to_lowercase()), colour, "{name}");
        }
        assert_eq!(default_colour(1, "immune cells"), [160, 90, 160]);
        // QuPath matches names exactly: another spelling is another class, our colour.
        assert_eq!(default_colour(1, "OTHER"), PALETTE[0]);
        assert_eq!(qupath_colour("other"), None);
    }

    #[test]
    fn our_names_are_not_predefined_by_qupath() {
        let ours = CONSEP_NAMES
            .iter()
            .chain(crate::data::pannuke::CLASS_NAMES.iter())
            .chain(NAMED_COLOURS.iter().map(|(n, _)| n));
        for name in ours {
            if *name == "other" {
                continue; // QuPath's own class, with QuPath's colour
            }
            assert!(
                qupath_colour(&title_case(name)).is_none(),
                "{name} is predefined by QuPath"
            );
            let colour = default_colour(1, name);
            assert!(
                QUPATH_CLASSES.iter().all(|(_, c)| *c != colour),
                "{name} has the colour of a QuPath class"
            );
        }
        let c = Classes::defaults(5);
        assert_eq!(
            c.colours(),
            [
                [0, 0, 0],
                [255, 200, 0],
                [0, 210, 0],
                [255, 140, 0],
                [0, 200, 255]
            ]
        );
        assert_eq!(
            c.qupath_names(),
            [
                "Background",
                "Other",
                "Inflammatory",
                "Epithelial",
                "Spindle-shaped"
            ]
        );
        let p = Classes::defaults(6);
        assert_eq!(
            p.colours(),
            [
                [0, 0, 0],
                [235, 20, 20],
                [0, 210, 0],
                [0, 120, 255],
                [255, 0, 255],
                [255, 140, 0]
            ]
        );
    }

    #[test]
    fn validation_names_the_problem() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let e = Classes::with_default_colours(names(&["background", ""])).unwrap_err();
        assert!(e.to_string().contains("class 1 has an empty name"), "{e}");
        let e = Classes::with_default_colours(names(&["background", "a\0b"])).unwrap_err();
        assert!(e.to_string().contains("class 1") && e.to_string().contains("NUL"));
        let e = Classes::new(names(&["a", "b"]), vec![[0, 0, 0]]).unwrap_err();
        assert!(e.to_string().contains("2 class names but 1 colours"), "{e}");
        assert!(Classes::new(vec![], vec![]).is_err());
        let c = Classes::defaults(5);
        assert!(c.check_count(5).is_ok());
        let e = c.check_count(6).unwrap_err();
        assert!(
            e.to_string()
                .contains("5 class names given, the model has 6"),
            "{e}"
        );
    }

    #[test]
    fn json_round_trip_and_errors() {
        let c = Classes::new(
            vec!["background".into(), "Tumour".into(), "Lymphocyte é".into()],
            vec![[0, 0, 0], [1, 2, 3], [250, 251, 252]],
        )
        .unwrap();
        let js = c.to_json();
        assert_eq!(Classes::from_json(&js).unwrap(), c);
        // A missing colour gets the default.
        let d = Classes::from_json(r#"[{"name":"background"},{"name":"other"}]"#).unwrap();
        assert_eq!(d.colours(), [[0, 0, 0], [255, 200, 0]]);
        for (bad, needle) in [
            (r#"{"name":"x"}"#, "expected a list"),
            (r#"[{"name":"x","colour":[256,0,0]}]"#, "expected a list"),
            (r#"[{"name":"x","colour":[1,2]}]"#, "expected a list"),
            (r#"[{"name":"x","color":[1,2,3]}]"#, "expected a list"),
            (r#"[{"name":""}]"#, "empty name"),
            (r#"[{"name":"a\u0000"}]"#, "NUL"),
            ("[]", "no class names"),
        ] {
            let e = Classes::from_json(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn colour_lists() {
        assert_eq!(
            parse_colours("#000000, ffc800,#00D200").unwrap(),
            [[0, 0, 0], [255, 200, 0], [0, 210, 0]]
        );
        for bad in ["#12345", "#1234567", "zz0000", "#00000g", ""] {
            let e = parse_colours(bad).unwrap_err().to_string();
            assert!(e.contains("RRGGBB"), "{bad}: {e}");
        }
        let e = parse_colours("000000,nope").unwrap_err().to_string();
        assert!(e.contains("colour 1"), "{e}");
    }

    #[test]
    fn title_case_upper_cases_the_first_letter_only() {
        assert_eq!(title_case("spindle-shaped"), "Spindle-shaped");
        assert_eq!(title_case("immune cells"), "Immune cells");
        assert_eq!(title_case("écaille"), "Écaille");
        assert_eq!(title_case(""), "");
    }
}
