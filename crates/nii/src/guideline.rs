//! The annotation guideline as data: the classes annotators may give an object, threat or
//! benign, each with its definition and example scans, versioned.
//!
//! A library keeps every version it published in `guideline.jsonl` (one full guideline a line,
//! the latest in force), so that an annotation can be read against the guideline of its day.
//! A library that never published one uses [`default_guideline`] (version 0): the generator's
//! threat classes with their definitions. Publishing checks the whole guideline first (names,
//! definitions, example scans present in the library) and names the class and field at fault.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::generate::{ThreatClass, THREAT_CLASSES};
use crate::library::{append_line, fail, json_error, read_lines, Library, LibraryError};

/// The file of the guideline's versions in a library folder.
pub const GUIDELINE_FILE: &str = "guideline.jsonl";

const FORMAT: &str = "borderlens-nii-guideline";

/// Whether objects of a class are what the inspection looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassKind {
    /// a threat or contraband: what the detector must find
    Threat,
    /// a benign object annotated to tell it from threats (a laptop, a hair dryer)
    Benign,
}

impl ClassKind {
    /// `threat` or `benign`.
    pub fn word(self) -> &'static str {
        match self {
            ClassKind::Threat => "threat",
            ClassKind::Benign => "benign",
        }
    }
}

/// One class of the guideline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuidelineClass {
    /// the label annotators give (lower case, digits and `_`)
    pub name: String,
    /// threat or benign
    pub kind: ClassKind,
    /// what counts as this class, and what does not
    pub definition: String,
    /// scans of the library that show it well
    #[serde(default)]
    pub examples: Vec<String>,
}

/// One version of the guideline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guideline {
    /// `borderlens-nii-guideline`
    pub format: String,
    /// 0 for the built-in guideline, then 1, 2, ... as versions are published
    pub version: u32,
    /// when it was published (UTC), empty for the built-in one
    #[serde(default)]
    pub published: String,
    /// the classes
    pub classes: Vec<GuidelineClass>,
}

impl Guideline {
    /// The classes' names, in order.
    pub fn names(&self) -> Vec<String> {
        self.classes.iter().map(|c| c.name.clone()).collect()
    }

    /// The class called `name`.
    pub fn class(&self, name: &str) -> Option<&GuidelineClass> {
        self.classes.iter().find(|c| c.name == name)
    }
}

fn definition(class: ThreatClass) -> &'static str {
    match class {
        ThreatClass::Knife => {
            "a knife with a handle and a blade longer than 6 cm, folded or not; not a blade \
             without a handle (blade), not scissors"
        }
        ThreatClass::Gun => {
            "a firearm or a major part of one (frame, slide, barrel), real or replica; not \
             loose ammunition (ammunition)"
        }
        ThreatClass::Blade => {
            "a blade without a handle (razor or utility blade, loose knife blade); box the metal"
        }
        ThreatClass::Bottle => {
            "a container of liquid over 100 ml (bottle, can, pouch); box the container with its \
             liquid"
        }
        ThreatClass::DrugBricks => {
            "compressed blocks of powder or plant matter, usually wrapped, alone or stacked; box \
             each brick that can be told apart, else the stack"
        }
        ThreatClass::CigaretteCartons => {
            "cartons or packs of cigarettes or tobacco in quantity; box each carton that can be \
             told apart, else the group"
        }
        ThreatClass::Ammunition => "cartridges or shells, loose or boxed; box the group",
        ThreatClass::Ied => {
            "an improvised device: a power source, wires and an organic mass together; box the \
             whole assembly"
        }
        ThreatClass::Scissors => "scissors of any size, open or closed",
    }
}

/// The built-in guideline (version 0): the generator's threat classes.
pub fn default_guideline() -> Guideline {
    Guideline {
        format: FORMAT.into(),
        version: 0,
        published: String::new(),
        classes: THREAT_CLASSES
            .iter()
            .map(|c| GuidelineClass {
                name: c.word().to_string(),
                kind: ClassKind::Threat,
                definition: definition(*c).to_string(),
                examples: Vec::new(),
            })
            .collect(),
    }
}

/// Every version the library published, oldest first (empty when none).
pub fn history(library: &Library) -> Result<Vec<Guideline>, LibraryError> {
    let path = library.root().join(GUIDELINE_FILE);
    let (lines, _torn) = read_lines(&path)?;
    let mut out: Vec<Guideline> = Vec::with_capacity(lines.len());
    for (line, text) in lines {
        let guideline: Guideline =
            serde_json::from_str(&text).map_err(|e| json_error(&path, line, &e))?;
        let expected = out.last().map_or(1, |g| g.version + 1);
        if guideline.format != FORMAT || guideline.version != expected {
            return Err(fail(
                &path,
                Some(line),
                Some("version"),
                format!(
                    "expected a {FORMAT} of version {expected}, found {} version {}",
                    guideline.format, guideline.version
                ),
            ));
        }
        out.push(guideline);
    }
    Ok(out)
}

/// The guideline in force: the latest published, else the built-in one.
pub fn current(library: &Library) -> Result<Guideline, LibraryError> {
    Ok(history(library)?.pop().unwrap_or_else(default_guideline))
}

/// Checks classes for publication: `(field, reason)` of the first problem.
pub fn check_classes(
    classes: &[GuidelineClass],
    library: &Library,
) -> Result<(), (String, String)> {
    if classes.is_empty() {
        return Err(("classes".into(), "a guideline needs a class".into()));
    }
    let mut seen = HashSet::new();
    for (i, class) in classes.iter().enumerate() {
        let at = |field: &str| format!("classes[{i}].{field}");
        let name = class.name.as_str();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err((
                at("name"),
                format!("'{name}': 1 to 64 lower-case letters, digits or _"),
            ));
        }
        if !seen.insert(name) {
            return Err((at("name"), format!("'{name}' is named twice")));
        }
        if class.definition.trim().chars().count() < 10 {
            return Err((
                at("definition"),
                format!("'{name}': say what counts as this class (10 characters or more)"),
            ));
        }
        for (k, scan) in class.examples.iter().enumerate() {
            if library.get(scan).is_none() {
                return Err((
                    at(&format!("examples[{k}]")),
                    format!("scan '{scan}' is not in the library"),
                ));
            }
        }
    }
    Ok(())
}

/// Publishes a new version of the guideline with `classes` (checked in full first; nothing is
/// written when a class is refused). Returns it.
pub fn publish(library: &Library, classes: Vec<GuidelineClass>) -> Result<Guideline, LibraryError> {
    let path = library.root().join(GUIDELINE_FILE);
    check_classes(&classes, library)
        .map_err(|(field, reason)| fail(&path, None, Some(&field), reason))?;
    let version = history(library)?.last().map_or(1, |g| g.version + 1);
    let guideline = Guideline {
        format: FORMAT.into(),
        version,
        published: crate::package::now_utc(),
        classes,
    };
    let line =
        serde_json::to_string(&guideline).map_err(|e| fail(&path, None, None, e.to_string()))?;
    append_line(&path, &line)?;
    Ok(guideline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::generate_into;
    use crate::generate::GeneratorParams;

    fn library(dir: &std::path::Path) -> Library {
        let params = GeneratorParams {
            width: 64,
            height: 64,
            ..GeneratorParams::default()
        };
        let mut library = Library::create(&dir.join("lib")).unwrap();
        generate_into(&mut library, &params, 1, 2, &|_| {}, &|| false).unwrap();
        library
    }

    fn class(name: &str, examples: &[&str]) -> GuidelineClass {
        GuidelineClass {
            name: name.into(),
            kind: ClassKind::Threat,
            definition: format!("a {name}, as the team agreed"),
            examples: examples.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_built_in_guideline_holds_until_one_is_published_and_versions_follow() {
        let dir = tempfile::tempdir().unwrap();
        let library = library(dir.path());
        let built_in = current(&library).unwrap();
        assert_eq!(built_in.version, 0);
        assert_eq!(built_in.names().len(), THREAT_CLASSES.len());
        assert!(built_in.classes.iter().all(|c| c.definition.len() >= 10));
        let scan = library.records()[0].metadata.scan_id.clone();
        let first = publish(&library, vec![class("knife", &[&scan])]).unwrap();
        assert_eq!(first.version, 1);
        let mut laptop = class("laptop", &[]);
        laptop.kind = ClassKind::Benign;
        let second = publish(&library, vec![class("knife", &[]), laptop]).unwrap();
        assert_eq!(second.version, 2);
        assert_eq!(current(&library).unwrap(), second);
        let all = history(&library).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].classes[0].examples, [scan]);
    }

    #[test]
    fn a_guideline_with_a_bad_class_is_refused_by_its_field_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let library = library(dir.path());
        let cases: Vec<(Vec<GuidelineClass>, &str)> = vec![
            (vec![], "field classes"),
            (vec![class("Knife", &[])], "classes[0].name"),
            (
                vec![class("knife", &[]), class("knife", &[])],
                "classes[1].name",
            ),
            (
                vec![GuidelineClass {
                    definition: " knife ".into(),
                    ..class("knife", &[])
                }],
                "classes[0].definition",
            ),
            (
                vec![class("gun", &["no-such-scan"])],
                "classes[0].examples[0]",
            ),
        ];
        for (classes, field) in cases {
            let error = publish(&library, classes).unwrap_err().to_string();
            assert!(error.contains(field), "{error} should name {field}");
        }
        assert!(history(&library).unwrap().is_empty());
        assert!(!library.root().join(GUIDELINE_FILE).exists());
    }
}
