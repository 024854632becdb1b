//! Normalisation of trade-party names and addresses, so that spellings of one party compare equal.
//!
//! - [`normalize_text`]: lower-case ASCII words separated by one space — diacritics and common
//!   Cyrillic and Greek letters transliterated, punctuation dropped, `&` read as `and`.
//! - [`normalize_company`]: the name without its legal form ([`CompanyName::core`]), and the legal
//!   form in a canonical spelling ([`CompanyName::legal_form`]): "ACME Trading Co., Ltd." and
//!   "acme trading company limited" are both `acme trading` + `ltd`.
//! - [`normalize_address`]: street types, directions, unit words and post-office boxes in one
//!   canonical spelling each: "12 Stanley St." and "12 stanley street" are equal.
//! - [`tokens`] and [`jaccard_tokens`]: words of normalised text, and the Jaccard index of two
//!   word sets.
//! - [`phonetic`]: a NYSIIS key per word, so that "Brown" and "Braun" agree.
//!
//! Written by hand rather than taken from a crate: general transliteration crates
//! romanise every script with large tables and change their output between versions, and no crate
//! knows trade parties — which tokens are legal forms in which country ("a/s", "sp. z o.o.",
//! "s.a. de c.v.", "ООО"), which abbreviations are safe to expand in a company name, or that
//! "Hauptstr." is "Hauptstraße". This is domain knowledge; the tables below are the whole of it,
//! and `docs/linkage-normalisation.md` lists them with their limits. Tests check that every
//! table entry is in the document.
//!
//! Every function is pure, never panics, and allocates only its output, the normalised text and
//! a word list;
//! the output of each normaliser is ASCII lower-case letters and digits in words separated by one
//! space, and normalising it again changes nothing.

use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

/// Lower-case ASCII words separated by one space, with no space at either end.
///
/// - ASCII letters are lower-cased; digits are kept.
/// - Latin letters with diacritics lose them (`é`→`e`, `ñ`→`n`, `ç`→`c`, Vietnamese `ệ`→`e`);
///   letters without a decomposition are spelled out (`ß`→`ss`, `æ`→`ae`, `œ`→`oe`, `ø`→`o`,
///   `ł`→`l`, `đ`→`d`, `þ`→`th`, `ı`→`i`); ligatures are split (`ﬁ`→`fi`). Combining marks
///   (decomposed input) are dropped, so "e\u{301}" is `e` too.
/// - Cyrillic is romanised letter by letter in the spellings most seen on English-language trade
///   documents (`ж`→`zh`, `х`→`kh`, `щ`→`shch`, `ю`→`yu`, `я`→`ya` as BGN/PCGN; `й`→`i` as
///   passports since 2013, so "Лукойл" is `lukoil`; `ъ`/`ь` dropped; Ukrainian, Serbian,
///   Macedonian, Belarusian and Kazakh letters included), Greek with a simplified ELOT 743 table
///   (`θ`→`th`, `χ`→`ch`, `ψ`→`ps`, `η`→`i`, `υ`→`y`).
/// - Full-width forms (`ＡＢＣ１２３`) are read as ASCII.
/// - Letters and digits of other scripts (Chinese, Arabic, Hebrew, ...) are kept, each written as
///   `u` and its code point in hex (`中` → `u4e2d`), so that equal names in those scripts still
///   compare equal; they are not romanised.
/// - `&` is the word `and`; apostrophes (`'`, `’`, `ʼ`, `` ` ``, `´`) are dropped without
///   splitting the word ("O'Brien" → `obrien`, "McDonald's" → `mcdonalds`); every other
///   character (punctuation, symbols, spaces, controls) separates words.
pub fn normalize_text(s: &str) -> String {
    let mut out = Words::with_capacity(s.len());
    for c in s.chars() {
        out.push_char(c);
    }
    out.text
}

/// The output of [`normalize_text`] being built: a separator is written lazily, only before the
/// next word, so that runs of separators collapse and nothing trails.
struct Words {
    text: String,
    pending_space: bool,
}

impl Words {
    fn with_capacity(n: usize) -> Self {
        Words {
            text: String::with_capacity(n),
            pending_space: false,
        }
    }

    fn separate(&mut self) {
        self.pending_space = true;
    }

    fn before_word(&mut self) {
        if self.pending_space && !self.text.is_empty() {
            self.text.push(' ');
        }
        self.pending_space = false;
    }

    fn push_str(&mut self, w: &str) {
        if !w.is_empty() {
            self.before_word();
            self.text.push_str(w);
        }
    }

    fn push_ascii(&mut self, b: u8) {
        match b {
            b'a'..=b'z' | b'0'..=b'9' => {
                self.before_word();
                self.text.push(b as char);
            }
            b'A'..=b'Z' => {
                self.before_word();
                self.text.push(b.to_ascii_lowercase() as char);
            }
            b'&' => {
                self.separate();
                self.push_str("and");
                self.separate();
            }
            b'\'' | b'`' => {}
            _ => self.separate(),
        }
    }

    fn push_char(&mut self, c: char) {
        if c.is_ascii() {
            self.push_ascii(c as u8);
            return;
        }
        let code = c as u32;
        if (0xFF01..=0xFF5E).contains(&code) {
            // Full-width ASCII: same order, shifted.
            self.push_ascii((code - 0xFEE0) as u8);
            return;
        }
        if is_ignorable(c) {
            return;
        }
        for lower in c.to_lowercase() {
            if lower.is_ascii() {
                // "İ" lower-cases to "i" and a combining dot.
                self.push_ascii(lower as u8);
                continue;
            }
            if is_ignorable(lower) {
                continue;
            }
            match transliterate(lower) {
                Some(ascii) => self.push_str(ascii),
                None if lower.is_alphanumeric() => {
                    self.before_word();
                    // Writing to a String cannot fail.
                    let _ = write!(self.text, "u{:x}", lower as u32);
                }
                None => self.separate(),
            }
        }
    }
}

/// Characters dropped without separating words: combining marks, zero-width characters, the
/// soft hyphen and apostrophe-like marks.
fn is_ignorable(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F // combining diacritical marks
        | 0x0483..=0x0489 // Cyrillic combining marks
        | 0x0591..=0x05BD // Hebrew points
        | 0x064B..=0x065F // Arabic harakat
        | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F // more combining
        | 0x00AD // soft hyphen
        | 0x200B..=0x200D | 0x2060 | 0xFEFF // zero-width space, joiners, BOM
        | 0x00B4 | 0x02B9..=0x02BC | 0x2018 | 0x2019 | 0x2032 // apostrophes, primes
    )
}

/// ASCII spelling of a lower-case letter of the Latin, Cyrillic or Greek table; `None` for
/// characters outside the table.
fn transliterate(c: char) -> Option<&'static str> {
    Some(match c {
        'ъ' | 'ь' => "",
        '¹' => "1",
        '²' => "2",
        '³' => "3",
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' | 'ǎ' | 'ǟ' | 'ǡ' | 'ǻ' | 'ȁ' | 'ȃ'
        | 'ȧ' | 'ḁ' | 'ạ' | 'ả' | 'ấ' | 'ầ' | 'ẩ' | 'ẫ' | 'ậ' | 'ắ' | 'ằ' | 'ẳ' | 'ẵ' | 'ặ'
        | 'ẚ' | 'ª' | 'а' | 'ә' | 'α' | 'ά' => "a",
        'ḃ' | 'ḅ' | 'ḇ' | 'ƀ' | 'ɓ' | 'б' => "b",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' | 'ḉ' | 'ƈ' | 'ȼ' | 'ћ' => "c",
        'ď' | 'ḋ' | 'ḍ' | 'ḏ' | 'ḑ' | 'ḓ' | 'đ' | 'ð' | 'ɗ' | 'д' | 'δ' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' | 'ȅ' | 'ȇ' | 'ȩ' | 'ḕ' | 'ḗ' | 'ḙ'
        | 'ḛ' | 'ḝ' | 'ẹ' | 'ẻ' | 'ẽ' | 'ế' | 'ề' | 'ể' | 'ễ' | 'ệ' | 'ɇ' | 'ǝ' | 'ə' | 'ɛ'
        | 'е' | 'э' | 'ѐ' | 'ё' | 'ε' | 'έ' => "e",
        'ḟ' | 'ƒ' | 'ф' | 'φ' => "f",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' | 'ǧ' | 'ǵ' | 'ḡ' | 'ǥ' | 'г' | 'ґ' | 'ғ' | 'γ' => "g",
        'ĥ' | 'ȟ' | 'ḣ' | 'ḥ' | 'ḧ' | 'ḩ' | 'ḫ' | 'ẖ' | 'ħ' | 'һ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ǐ' | 'ȉ' | 'ȋ' | 'ḭ' | 'ḯ' | 'ỉ' | 'ị'
        | 'ı' | 'и' | 'й' | 'і' | 'ѝ' | 'η' | 'ή' | 'ι' | 'ί' | 'ϊ' | 'ΐ' => "i",
        'ĵ' | 'ǰ' | 'ȷ' | 'ɉ' | 'ј' => "j",
        'ķ' | 'ǩ' | 'ḱ' | 'ḳ' | 'ḵ' | 'ĸ' | 'ƙ' | 'к' | 'қ' | 'κ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ḷ' | 'ḹ' | 'ḻ' | 'ḽ' | 'ŀ' | 'ł' | 'ƚ' | 'л' | 'λ' => {
            "l"
        }
        'ḿ' | 'ṁ' | 'ṃ' | 'м' | 'μ' | 'µ' => "m",
        'ñ' | 'ń' | 'ņ' | 'ň' | 'ǹ' | 'ṅ' | 'ṇ' | 'ṉ' | 'ṋ' | 'ŉ' | 'ŋ' | 'н' | 'ң' | 'ν' => {
            "n"
        }
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ō' | 'ŏ' | 'ő' | 'ơ' | 'ǒ' | 'ǫ' | 'ǭ' | 'ȍ' | 'ȏ' | 'ȫ'
        | 'ȭ' | 'ȯ' | 'ȱ' | 'ṍ' | 'ṏ' | 'ṑ' | 'ṓ' | 'ọ' | 'ỏ' | 'ố' | 'ồ' | 'ổ' | 'ỗ' | 'ộ'
        | 'ớ' | 'ờ' | 'ở' | 'ỡ' | 'ợ' | 'ø' | 'ǿ' | 'ɔ' | 'º' | 'о' | 'ө' | 'ο' | 'ό' | 'ω'
        | 'ώ' => "o",
        'ṕ' | 'ṗ' | 'ƥ' | 'п' | 'π' => "p",
        'ŕ' | 'ŗ' | 'ř' | 'ȑ' | 'ȓ' | 'ṙ' | 'ṛ' | 'ṝ' | 'ṟ' | 'ɍ' | 'р' | 'ρ' => {
            "r"
        }
        'ś' | 'ŝ' | 'ş' | 'š' | 'ſ' | 'ș' | 'ṡ' | 'ṣ' | 'ṥ' | 'ṧ' | 'ṩ' | 'ẛ' | 'с' | 'σ' | 'ς' => {
            "s"
        }
        'ţ' | 'ť' | 'ț' | 'ṫ' | 'ṭ' | 'ṯ' | 'ṱ' | 'ẗ' | 'ŧ' | 'ƭ' | 'т' | 'τ' => {
            "t"
        }
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' | 'ư' | 'ǔ' | 'ǖ' | 'ǘ' | 'ǚ'
        | 'ǜ' | 'ȕ' | 'ȗ' | 'ṳ' | 'ṵ' | 'ṷ' | 'ṹ' | 'ṻ' | 'ụ' | 'ủ' | 'ứ' | 'ừ' | 'ử' | 'ữ'
        | 'ự' | 'у' | 'ў' | 'ү' | 'ұ' => "u",
        'ṽ' | 'ṿ' | 'в' | 'β' => "v",
        'ŵ' | 'ẁ' | 'ẃ' | 'ẅ' | 'ẇ' | 'ẉ' | 'ẘ' => "w",
        'ẋ' | 'ẍ' | 'ξ' => "x",
        'ý' | 'ÿ' | 'ŷ' | 'ȳ' | 'ẏ' | 'ẙ' | 'ỳ' | 'ỵ' | 'ỷ' | 'ỹ' | 'ɏ' | 'ƴ' | 'ы' | 'υ' | 'ύ'
        | 'ϋ' | 'ΰ' => "y",
        'ź' | 'ż' | 'ž' | 'ẑ' | 'ẓ' | 'ẕ' | 'ƶ' | 'з' | 'ζ' => "z",
        'æ' | 'ǣ' | 'ǽ' => "ae",
        'ч' | 'χ' => "ch",
        'ђ' => "dj",
        'ǆ' | 'ǳ' | 'ѕ' | 'џ' => "dz",
        'ﬀ' => "ff",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ѓ' => "gj",
        'ĳ' => "ij",
        'х' => "kh",
        'ќ' => "kj",
        'ǉ' | 'љ' => "lj",
        'ǌ' | 'њ' => "nj",
        'œ' => "oe",
        'ψ' => "ps",
        'ш' => "sh",
        'щ' => "shch",
        'ß' => "ss",
        'ﬅ' | 'ﬆ' => "st",
        'þ' | 'θ' => "th",
        'ц' => "ts",
        'я' => "ya",
        'є' => "ye",
        'ї' => "yi",
        'ю' => "yu",
        'ж' => "zh",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Company names
// ---------------------------------------------------------------------------------------------

/// A company name split into the name proper and its legal form.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct CompanyName {
    /// The normalised name without legal form, leading "the" and prefix forms ("ООО"), with
    /// abbreviations expanded ("intl" → "international"). Empty only when the input has no letter
    /// or digit; never empty when a legal form was found.
    pub core: String,
    /// The legal form in its canonical spelling (`ltd`, `llc`, `gmbh`, `kg`, `sa`, `sp zoo`, ...;
    /// see [`LEGAL_FORMS`]), or `None` when the name carries none.
    pub legal_form: Option<&'static str>,
}

/// Legal forms written at the end of a name, by country or region: each entry is the written
/// form (as [`normalize_text`] writes it, with runs of single letters joined: "S.A." is `sa`,
/// "A/S" is `as`, "sp. z o.o." is `sp zoo`) and its canonical form. A written form may appear
/// under several countries; it then has one canonical form everywhere.
pub const LEGAL_FORMS: &[(&str, &[(&str, &str)])] = &[
    (
        "English-speaking (UK, IE, US, CA, AU, NZ, ZA, IN, PK, SG, HK, MY, PH, NG, IL) and English names of Asian companies (CN, JP, KR, TH, VN)",
        &[
            ("ltd", "ltd"),
            ("limited", "ltd"),
            ("co ltd", "ltd"),
            ("co limited", "ltd"),
            ("company ltd", "ltd"),
            ("company limited", "ltd"),
            ("pte ltd", "ltd"),
            ("pte limited", "ltd"),
            ("private ltd", "ltd"),
            ("private limited", "ltd"),
            ("pvt ltd", "ltd"),
            ("pvt limited", "ltd"),
            ("pty ltd", "ltd"),
            ("pty limited", "ltd"),
            ("proprietary limited", "ltd"),
            ("plc", "plc"),
            ("public limited company", "plc"),
            ("public co ltd", "plc"),
            ("public company limited", "plc"),
            ("pcl", "plc"),
            ("llc", "llc"),
            ("limited liability company", "llc"),
            ("limited liability co", "llc"),
            ("inc", "inc"),
            ("incorporated", "inc"),
            ("corp", "corp"),
            ("corpn", "corp"),
            ("corporation", "corp"),
            ("co", "co"),
            ("company", "co"),
            ("lp", "lp"),
            ("limited partnership", "lp"),
            ("llp", "llp"),
            ("limited liability partnership", "llp"),
            ("jsc", "jsc"),
            ("joint stock company", "jsc"),
            ("joint stock co", "jsc"),
        ],
    ),
    ("Canada (French)", &[("ltee", "ltd"), ("limitee", "ltd")]),
    (
        "Germany, Austria, Switzerland, Liechtenstein",
        &[
            ("gmbh", "gmbh"),
            ("mbh", "gmbh"),
            ("gesmbh", "gmbh"),
            ("ges mbh", "gmbh"),
            ("gesellschaft mbh", "gmbh"),
            ("gesellschaft mit beschrankter haftung", "gmbh"),
            ("ag", "ag"),
            ("aktiengesellschaft", "ag"),
            ("kg", "kg"),
            ("co kg", "kg"),
            ("gmbh co kg", "kg"),
            ("gmbh and co kg", "kg"),
            ("ag co kg", "kg"),
            ("ag and co kg", "kg"),
            ("kommanditgesellschaft", "kg"),
            ("kgaa", "kgaa"),
            ("gmbh and co kgaa", "kgaa"),
            ("ag and co kgaa", "kgaa"),
            ("se and co kgaa", "kgaa"),
            ("ohg", "ohg"),
            ("ug", "ug"),
            ("ug haftungsbeschrankt", "ug"),
            ("ek", "ek"),
        ],
    ),
    ("European Union", &[("se", "se")]),
    (
        "France, Belgium, Luxembourg, Switzerland (French)",
        &[
            ("sa", "sa"),
            ("societe anonyme", "sa"),
            ("sas", "sas"),
            ("sasu", "sas"),
            ("societe par actions simplifiee", "sas"),
            ("sarl", "sarl"),
            ("eurl", "sarl"),
            ("snc", "snc"),
            ("sprl", "sprl"),
            ("srl", "srl"),
            ("cie", "co"),
        ],
    ),
    (
        "Spain and Latin America",
        &[
            ("sa", "sa"),
            ("sociedad anonima", "sa"),
            ("sl", "sl"),
            ("slu", "sl"),
            ("sociedad limitada", "sl"),
            ("sa de cv", "sa de cv"),
            ("sab de cv", "sa de cv"),
            ("sapi de cv", "sa de cv"),
            ("s de rl de cv", "s de rl de cv"),
            ("s de rl", "s de rl"),
            ("ltda", "ltda"),
            ("cia ltda", "ltda"),
            ("cia", "co"),
            ("sas", "sas"),
            ("spa", "spa"),
            ("srl", "srl"),
        ],
    ),
    (
        "Portugal and Brazil",
        &[
            ("lda", "ltda"),
            ("ltda", "ltda"),
            ("limitada", "ltda"),
            ("sa", "sa"),
            ("eireli", "eireli"),
            ("cia", "co"),
        ],
    ),
    (
        "Italy",
        &[
            ("spa", "spa"),
            ("societa per azioni", "spa"),
            ("srl", "srl"),
            ("srls", "srl"),
            ("societa a responsabilita limitata", "srl"),
            ("snc", "snc"),
            ("sas", "sas"),
        ],
    ),
    (
        "Netherlands and Belgium (Dutch)",
        &[
            ("bv", "bv"),
            ("besloten vennootschap", "bv"),
            ("bvba", "bv"),
            ("nv", "nv"),
            ("naamloze vennootschap", "nv"),
            ("sanv", "nv"),
            ("nvsa", "nv"),
            ("vof", "vof"),
        ],
    ),
    (
        "Nordic countries",
        &[
            ("ab", "ab"),
            ("ab publ", "ab"),
            ("aktiebolag", "ab"),
            ("as", "as"),
            ("asa", "asa"),
            ("aps", "aps"),
            ("oy", "oy"),
            ("oyj", "oyj"),
            ("ehf", "ehf"),
            ("hf", "hf"),
        ],
    ),
    (
        "Poland",
        &[
            ("sp zoo", "sp zoo"),
            ("sp z oo", "sp zoo"),
            ("spolka z ograniczona odpowiedzialnoscia", "sp zoo"),
            ("sp k", "sp k"),
            ("sp j", "sp j"),
            ("sa", "sa"),
        ],
    ),
    (
        "Czechia and Slovakia",
        &[("sro", "sro"), ("spol sro", "sro"), ("as", "as")],
    ),
    (
        "Hungary",
        &[
            ("kft", "kft"),
            ("zrt", "zrt"),
            ("nyrt", "nyrt"),
            ("bt", "bt"),
            ("kkt", "kkt"),
        ],
    ),
    ("Romania and Moldova", &[("srl", "srl"), ("sa", "sa")]),
    (
        "Slovenia, Croatia, Serbia, Bosnia, Montenegro, North Macedonia",
        &[("doo", "doo"), ("dooel", "doo"), ("dd", "dd")],
    ),
    (
        "Bulgaria",
        &[("ood", "ood"), ("eood", "ood"), ("ad", "ad"), ("ead", "ad")],
    ),
    (
        "Greece and Cyprus",
        &[("ae", "ae"), ("epe", "epe"), ("ike", "ike")],
    ),
    (
        "Turkey",
        &[
            ("ltd sti", "ltd sti"),
            ("limited sirketi", "ltd sti"),
            ("as", "as"),
            ("anonim sirketi", "as"),
        ],
    ),
    (
        "Baltic states",
        &[("sia", "sia"), ("as", "as"), ("ou", "ou"), ("uab", "uab"), ("ab", "ab")],
    ),
    (
        "Russia, Ukraine, Belarus, Kazakhstan and neighbours (also written first, see PREFIX_FORMS)",
        &[
            ("ooo", "llc"),
            ("ao", "jsc"),
            ("oao", "jsc"),
            ("zao", "jsc"),
            ("pao", "jsc"),
            ("ojsc", "jsc"),
            ("cjsc", "jsc"),
            ("pjsc", "jsc"),
            ("open joint stock company", "jsc"),
            ("closed joint stock company", "jsc"),
            ("public joint stock company", "jsc"),
        ],
    ),
    (
        "Japan",
        &[
            ("kk", "kk"),
            ("kabushiki kaisha", "kk"),
            ("kabushikigaisha", "kk"),
            ("yk", "yk"),
            ("yugen kaisha", "yk"),
            ("gk", "gk"),
            ("godo kaisha", "gk"),
        ],
    ),
    ("China (pinyin)", &[("youxian gongsi", "ltd")]),
    (
        "Malaysia and Brunei",
        &[
            ("sdn bhd", "sdn bhd"),
            ("sendirian berhad", "sdn bhd"),
            ("bhd", "bhd"),
            ("berhad", "bhd"),
        ],
    ),
    ("Indonesia", &[("tbk", "tbk")]),
    (
        "Gulf states",
        &[
            ("wll", "wll"),
            ("fze", "fze"),
            ("fzco", "fzco"),
            ("fzc", "fzco"),
            ("fz llc", "llc"),
            ("fzllc", "llc"),
            ("spc", "spc"),
            ("saog", "saog"),
            ("saoc", "saoc"),
        ],
    ),
];

/// Legal forms written before the name ("ООО Ромашка", "PT Maju Jaya"): written form and
/// canonical form. The Russian and Ukrainian forms have the canonical form of their usual English
/// rendering on trade documents (ООО is an LLC, АО a joint-stock company).
pub const PREFIX_FORMS: &[(&str, &str)] = &[
    ("ooo", "llc"),
    ("tov", "llc"),
    ("too", "llc"),
    ("ao", "jsc"),
    ("oao", "jsc"),
    ("zao", "jsc"),
    ("pao", "jsc"),
    ("pt", "pt"),
    ("cv", "cv"),
    ("sia", "sia"),
    ("uab", "uab"),
];

/// Words joining a name to a legal form ("Smith & Co", "Dupont et Cie", "García y Cía"), dropped
/// when they end the name once the legal form is stripped.
const CONNECTORS: &[&str] = &["and", "et", "und", "u", "y", "e", "en"];

/// Abbreviations expanded inside company names, sorted by abbreviation. Only abbreviations that
/// are rarely a word or name of their own are here ("co", "st", "gen", "ent" are not).
/// "imp" and "exp" are expanded only next to each other (see [`normalize_company`]).
pub const COMPANY_ABBREVIATIONS: &[(&str, &str)] = &[
    ("assn", "association"),
    ("assocs", "associates"),
    ("bros", "brothers"),
    ("chem", "chemical"),
    ("chems", "chemicals"),
    ("dept", "department"),
    ("devt", "development"),
    ("distr", "distribution"),
    ("distrib", "distribution"),
    ("elec", "electric"),
    ("eng", "engineering"),
    ("engg", "engineering"),
    ("entp", "enterprise"),
    ("ents", "enterprises"),
    ("eqpt", "equipment"),
    ("equip", "equipment"),
    ("grp", "group"),
    ("hldg", "holding"),
    ("hldgs", "holdings"),
    ("ind", "industries"),
    ("indl", "industrial"),
    ("inds", "industries"),
    ("internat", "international"),
    ("intl", "international"),
    ("mach", "machinery"),
    ("mfg", "manufacturing"),
    ("mfr", "manufacturer"),
    ("mfrs", "manufacturers"),
    ("mgmt", "management"),
    ("mgt", "management"),
    ("mktg", "marketing"),
    ("natl", "national"),
    ("pharm", "pharmaceutical"),
    ("pharma", "pharmaceutical"),
    ("prods", "products"),
    ("svc", "service"),
    ("svcs", "services"),
    ("sys", "systems"),
    ("tech", "technology"),
    ("trdg", "trading"),
    ("whse", "warehouse"),
];

/// Written legal forms (as words) and their canonical form.
type Patterns = Vec<(Vec<&'static str>, &'static str)>;

/// Suffix patterns by their last word, longest first.
static SUFFIX_INDEX: LazyLock<WordMap<Patterns>> = LazyLock::new(|| {
    let mut index: WordMap<Patterns> = WordMap::default();
    for (_, forms) in LEGAL_FORMS {
        for &(written, canonical) in *forms {
            let tokens: Vec<&'static str> = written.split(' ').collect();
            let patterns = index.entry(tokens[tokens.len() - 1]).or_default();
            if !patterns.iter().any(|(t, _)| *t == tokens) {
                patterns.push((tokens, canonical));
            }
        }
    }
    for patterns in index.values_mut() {
        patterns.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
    }
    index
});

/// Splits a company name into its core and legal form.
///
/// Steps, on the words of [`normalize_text`]:
/// 1. Runs of single letters are joined: "S.A." → `sa`, "A/S" → `as`, "J. P. Morgan" →
///    `jp morgan`, "L.L.C." → `llc`.
/// 2. A leading "the" and legal forms written first ([`PREFIX_FORMS`]: "ООО", "PT", ...) are
///    dropped.
/// 3. Legal forms at the end ([`LEGAL_FORMS`]) are stripped, longest written form first, again and
///    again ("Co., Ltd.", "GmbH & Co. KG"), together with a connector left at the end
///    ("Smith & Co" → `smith`). The legal form reported is the last one in the name; one written
///    first is reported only when none is written at the end.
/// 4. Abbreviations are expanded ([`COMPANY_ABBREVIATIONS`]); "imp" and "exp" become "import"
///    and "export" when next to each other ("Imp. & Exp.").
///
/// Steps 2 and 3 never remove the last remaining word: "Ltd" alone is the core `ltd` with no
/// legal form. "Trading", "holdings", "group", "international" and the like are part of the core,
/// not legal forms.
pub fn normalize_company(s: &str) -> CompanyName {
    let text = join_initials(normalize_text(s));
    let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    let (mut start, mut end) = (0, words.len());
    let mut prefix_form = None;
    while end - start >= 2 {
        let first = words[start];
        if first == "the" {
            start += 1;
        } else if let Some(&(_, canonical)) = PREFIX_FORMS.iter().find(|(w, _)| *w == first) {
            prefix_form.get_or_insert(canonical);
            start += 1;
        } else if let Some((len, canonical)) = legal_prefix(&words[start..end]) {
            // A legal form of the end written first, as filers do ("N.V. Bekaert", "S.A.
            // Solvay", "Société anonyme Cockerill").
            prefix_form.get_or_insert(canonical);
            start += len;
        } else {
            break;
        }
    }
    let mut suffix_form = None;
    while end - start >= 2 {
        let Some((len, canonical)) = legal_suffix(&words[start..end]) else {
            break;
        };
        suffix_form.get_or_insert(canonical);
        end -= len;
        while end - start >= 2 && CONNECTORS.contains(&words[end - 1]) {
            end -= 1;
        }
    }
    let core_words = &words[start..end];
    let mut core = String::with_capacity(text.len() + 16);
    for (i, word) in core_words.iter().enumerate() {
        if i > 0 {
            core.push(' ');
        }
        core.push_str(expand_company_word(core_words, i, word));
    }
    CompanyName {
        core,
        legal_form: suffix_form.or(prefix_form),
    }
}

/// The longest legal form ending `words` that leaves at least one word: its length in words and
/// canonical form.
fn legal_suffix(words: &[&str]) -> Option<(usize, &'static str)> {
    let last = words.last()?;
    SUFFIX_INDEX
        .get(*last)?
        .iter()
        .find_map(|(pattern, canonical)| {
            (pattern.len() < words.len() && words.ends_with(pattern))
                .then_some((pattern.len(), *canonical))
        })
}

/// Legal forms of [`LEGAL_FORMS`] that are not taken as a legal form when they begin a name:
/// words that also begin names ("Co-operative", "Company of ...", "AG Barr", "AB Foods").
const NOT_FIRST: &[&str] = &[
    "co", "company", "cie", "cia", "ag", "ab", "as", "se", "oy", "e",
];

/// The longest legal form beginning `words` that leaves at least one word: its length in words
/// and canonical form.
fn legal_prefix(words: &[&str]) -> Option<(usize, &'static str)> {
    let first = words.first()?;
    if NOT_FIRST.contains(first) {
        return None;
    }
    LEGAL_FORMS
        .iter()
        .flat_map(|(_, forms)| forms.iter())
        .filter(|(written, _)| {
            let n = written.split(' ').count();
            n < words.len() && written.split(' ').zip(words).all(|(a, b)| a == *b)
        })
        .max_by_key(|(written, _)| written.split(' ').count())
        .map(|&(written, canonical)| (written.split(' ').count(), canonical))
}

/// The expansion of `words[i]` (`word`) inside a company name.
fn expand_company_word<'a>(words: &[&'a str], i: usize, word: &'a str) -> &'a str {
    // "imp & exp", "imp exp", "import & exp", ...: a pair, expanded only together.
    let partner = |step: isize, wanted: [&str; 2]| {
        let at = |k: isize| {
            usize::try_from(i as isize + k)
                .ok()
                .and_then(|k| words.get(k))
                .copied()
        };
        let next = at(step);
        next.is_some_and(|w| wanted.contains(&w))
            || (next == Some("and") && at(2 * step).is_some_and(|w| wanted.contains(&w)))
    };
    match word {
        "imp" if partner(1, ["exp", "export"]) => "import",
        "exp" if partner(-1, ["imp", "import"]) => "export",
        _ => ABBREVIATIONS.get(word).copied().unwrap_or(word),
    }
}

/// Joins runs of single-letter words of normalised text: "s a de c v" → "sa de cv". Returns
/// `text` itself when there is nothing to join.
fn join_initials(text: String) -> String {
    let b = text.as_bytes();
    // The space at `i` separates two single-letter words.
    let joins = |i: usize| {
        b[i] == b' '
            && i >= 1
            && b[i - 1].is_ascii_alphabetic()
            && (i == 1 || b[i - 2] == b' ')
            && i + 1 < b.len()
            && b[i + 1].is_ascii_alphabetic()
            && (i + 2 == b.len() || b[i + 2] == b' ')
    };
    if !(0..b.len()).any(joins) {
        return text;
    }
    text.char_indices()
        .filter(|&(i, _)| !joins(i))
        .map(|(_, c)| c)
        .collect()
}

/// FNV-1a: table keys are a few ASCII bytes, for which SipHash (the default) is slow and its
/// flooding resistance useless (the keys are ours).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A word table keyed by written form.
type WordMap<V> = HashMap<&'static str, V, BuildHasherDefault<Fnv>>;

static ABBREVIATIONS: LazyLock<WordMap<&'static str>> =
    LazyLock::new(|| COMPANY_ABBREVIATIONS.iter().copied().collect());

static ADDRESS_MAP: LazyLock<WordMap<&'static str>> =
    LazyLock::new(|| ADDRESS_WORDS.iter().copied().collect());

// ---------------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------------

/// Street types, directions and unit words of addresses with their canonical spelling, sorted by
/// the written form. The canonical spelling is the full English word ("St", "Str.", "Straße" and
/// "Street" are all `street`); a canonical word is not in the table, it stays as it is.
pub const ADDRESS_WORDS: &[(&str, &str)] = &[
    ("aly", "alley"),
    ("apmt", "apartment"),
    ("appt", "apartment"),
    ("apt", "apartment"),
    ("av", "avenue"),
    ("avda", "avenue"),
    ("ave", "avenue"),
    ("avenida", "avenue"),
    ("avn", "avenue"),
    ("bd", "boulevard"),
    ("bld", "building"),
    ("bldg", "building"),
    ("blk", "block"),
    ("blvd", "boulevard"),
    ("boul", "boulevard"),
    ("bsmt", "basement"),
    ("bvd", "boulevard"),
    ("cct", "circuit"),
    ("center", "centre"),
    ("cir", "circle"),
    ("cl", "close"),
    ("cnr", "corner"),
    ("cntr", "centre"),
    ("cres", "crescent"),
    ("crt", "court"),
    ("ct", "court"),
    ("ctr", "centre"),
    ("dept", "department"),
    ("dr", "drive"),
    ("drv", "drive"),
    ("e", "east"),
    ("esp", "esplanade"),
    ("expy", "expressway"),
    ("fl", "floor"),
    ("flr", "floor"),
    ("fwy", "freeway"),
    ("gdn", "garden"),
    ("gdns", "gardens"),
    ("gr", "grove"),
    ("gve", "grove"),
    ("hts", "heights"),
    ("hway", "highway"),
    ("hwy", "highway"),
    ("jct", "junction"),
    ("ln", "lane"),
    ("lvl", "level"),
    ("mt", "mount"),
    ("mtn", "mountain"),
    ("n", "north"),
    ("ne", "northeast"),
    ("nth", "north"),
    ("nw", "northwest"),
    ("pde", "parade"),
    ("pkwy", "parkway"),
    ("pl", "place"),
    ("rd", "road"),
    ("rm", "room"),
    ("rte", "route"),
    ("s", "south"),
    ("se", "southeast"),
    ("sq", "square"),
    ("sqr", "square"),
    ("st", "street"),
    ("ste", "suite"),
    ("sth", "south"),
    ("str", "street"),
    ("straat", "street"),
    ("strasse", "street"),
    ("sw", "southwest"),
    ("tce", "terrace"),
    ("terr", "terrace"),
    ("twr", "tower"),
    ("vlge", "village"),
    ("w", "west"),
    ("wk", "walk"),
    ("wy", "way"),
];

/// Word endings read as a separate "street": German and Dutch compounds ("Hauptstraße",
/// "Hauptstr.", "Kalverstraat") and English words run together ("pridhamstreet").
pub const STREET_SUFFIXES: &[&str] = &["strasse", "straat", "street", "str"];

/// Written forms of a post-office box, all `po box`.
pub const PO_BOX_FORMS: &[&str] = &[
    "po box",
    "p o box",
    "pob",
    "p o b",
    "pobox",
    "post office box",
    "postfach",
];

/// Words for "number" dropped before a number ("No. 12", "Nr. 12", "Number 12").
const NUMBER_WORDS: &[&str] = &["no", "nr", "nro", "num", "number"];

/// Normalised address: [`normalize_text`], then each street type, direction and unit word in one
/// canonical spelling ([`ADDRESS_WORDS`]), compounds ending in a street word split
/// ([`STREET_SUFFIXES`]: "Hauptstr." → `haupt street`), post-office boxes as `po box`
/// ([`PO_BOX_FORMS`]), two directions as one word ("N.E.", "north east" → `northeast`), and
/// "No."/"Nr." before a number dropped. Numbers are kept as written.
pub fn normalize_address(s: &str) -> String {
    let text = normalize_text(s);
    let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    let mut out = String::with_capacity(text.len() + 16);
    let mut push = |w: &str| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    };
    let mut i = 0;
    while i < words.len() {
        let rest = &words[i..];
        if let Some(len) = po_box_len(rest) {
            push("po box");
            i += len;
            continue;
        }
        if let Some(both) = two_directions(rest) {
            push(both);
            i += 2;
            continue;
        }
        if NUMBER_WORDS.contains(&rest[0]) {
            let after = rest
                .iter()
                .position(|w| !NUMBER_WORDS.contains(w))
                .unwrap_or(rest.len());
            if rest
                .get(after)
                .is_some_and(|w| w.as_bytes()[0].is_ascii_digit())
            {
                i += after;
                continue;
            }
        }
        let word = rest[0];
        let mut stem = word;
        let mut streets = 0;
        while let Some(shorter) = strip_street_suffix(stem) {
            stem = shorter;
            streets += 1;
        }
        push(ADDRESS_MAP.get(stem).copied().unwrap_or(stem));
        for _ in 0..streets {
            push("street");
        }
        i += 1;
    }
    out
}

/// How many words of a post-office box form start `words`.
fn po_box_len(words: &[&str]) -> Option<usize> {
    // The first words of PO_BOX_FORMS: most words are rejected here.
    if !matches!(
        *words.first()?,
        "p" | "po" | "pob" | "pobox" | "post" | "postfach"
    ) {
        return None;
    }
    PO_BOX_FORMS.iter().find_map(|form| {
        let n = form.split(' ').count();
        (words.len() >= n && form.split(' ').zip(words).all(|(f, w)| f == *w)).then_some(n)
    })
}

/// Two directions written apart ("n e", "north east", "s w") as one word.
fn two_directions(words: &[&str]) -> Option<&'static str> {
    let north_south = match *words.first()? {
        "n" | "nth" | "north" => "north",
        "s" | "sth" | "south" => "south",
        _ => return None,
    };
    let east_west = match *words.get(1)? {
        "e" | "east" => "east",
        "w" | "west" => "west",
        _ => return None,
    };
    Some(match (north_south, east_west) {
        ("north", "east") => "northeast",
        ("north", _) => "northwest",
        (_, "east") => "southeast",
        _ => "southwest",
    })
}

/// The stem of a compound ending in a street word ("hauptstr" → "haupt"), when the stem has at
/// least three letters.
fn strip_street_suffix(word: &str) -> Option<&str> {
    STREET_SUFFIXES.iter().find_map(|suffix| {
        let stem = word.strip_suffix(suffix)?;
        (stem.len() >= 3 && stem.bytes().all(|b| b.is_ascii_alphabetic())).then_some(stem)
    })
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// The words of `s`, split on whitespace. Give it normalised text: it does not normalise.
pub fn tokens(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

/// Jaccard index of the word sets of `a` and `b`: |A ∩ B| / |A ∪ B|, in [0, 1], symmetric;
/// repeated words count once. 0 when exactly one side has no word; 1 when neither has one (equal
/// empty sets, as `strsim` scores two empty strings) — a caller that treats an empty value as
/// missing should check for it first. Give it normalised text: it does not normalise. Up to 32
/// distinct words a side it allocates nothing.
pub fn jaccard_tokens(a: &str, b: &str) -> f64 {
    const SMALL: usize = 32;
    let mut small_a = [""; SMALL];
    let mut small_b = [""; SMALL];
    let (mut vec_a, mut vec_b) = (Vec::new(), Vec::new());
    let a = word_set(a, &mut small_a, &mut vec_a);
    let b = word_set(b, &mut small_b, &mut vec_b);
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return 1.0,
        (true, false) | (false, true) => return 0.0,
        _ => {}
    }
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    common as f64 / (a.len() + b.len() - common) as f64
}

/// The sorted distinct words of `s`, in `small` when they fit, else in `large`.
fn word_set<'a, 'b>(
    s: &'a str,
    small: &'b mut [&'a str],
    large: &'b mut Vec<&'a str>,
) -> &'b [&'a str] {
    let mut n = 0;
    let mut words = s.split_whitespace();
    for word in words.by_ref() {
        if n == small.len() {
            large.extend_from_slice(small);
            large.push(word);
            break;
        }
        small[n] = word;
        n += 1;
    }
    let set: &mut [&'a str] = if large.is_empty() {
        &mut small[..n]
    } else {
        large.extend(words);
        large
    };
    set.sort_unstable();
    let mut distinct = 0;
    for k in 0..set.len() {
        if distinct == 0 || set[k] != set[distinct - 1] {
            set[distinct] = set[k];
            distinct += 1;
        }
    }
    &set[..distinct]
}

// ---------------------------------------------------------------------------------------------
// Phonetic key
// ---------------------------------------------------------------------------------------------

/// A NYSIIS phonetic key of each word of `s` (after [`normalize_text`]), separated by one space.
///
/// NYSIIS (New York State Identification and Intelligence System, Taft 1970) was designed for
/// personal names and is more precise than Soundex on them; it keeps the vowel positions (as `A`)
/// and the key reads like the name: "Brown", "Braun" and "Brun" are all `BRAN`, "Schmidt" is
/// `SNAD`, "Knight" is `NAGT`. This follows Apache Commons Codec's `Nysiis` with `strict =
/// false`: the key is not cut to six letters. Keys are upper-case; words with a digit (numbers,
/// and letters of scripts written as code points by [`normalize_text`]) are kept as they are.
pub fn phonetic(s: &str) -> String {
    let text = normalize_text(s);
    let mut out = String::with_capacity(text.len());
    let mut name = Vec::new();
    let mut key = Vec::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        if word.bytes().all(|b| b.is_ascii_lowercase()) {
            nysiis(word.as_bytes(), &mut name, &mut key);
            out.extend(key.iter().map(|&b| b as char));
        } else {
            out.push_str(word);
        }
    }
    out
}

fn is_vowel(b: u8) -> bool {
    matches!(b, b'A' | b'E' | b'I' | b'O' | b'U')
}

/// NYSIIS key of one word of ASCII lower-case letters, into `key`; `name` is scratch space.
fn nysiis(word: &[u8], name: &mut Vec<u8>, key: &mut Vec<u8>) {
    name.clear();
    name.extend(word.iter().map(u8::to_ascii_uppercase));
    key.clear();
    if name.is_empty() {
        return;
    }
    // 1. First letters.
    if name.starts_with(b"MAC") {
        name[1] = b'C'; // MAC → MCC
    } else if name.starts_with(b"KN") {
        name[0] = b'N'; // KN → NN
    } else if name[0] == b'K' {
        name[0] = b'C';
    } else if name.starts_with(b"PH") || name.starts_with(b"PF") {
        name[1] = b'F'; // → FF
        name[0] = b'F';
    } else if name.starts_with(b"SCH") {
        name[1] = b'S'; // → SSS
        name[2] = b'S';
    }
    // 2. Last letters.
    if name.ends_with(b"EE") || name.ends_with(b"IE") {
        name.truncate(name.len() - 2);
        name.push(b'Y');
    } else if [&b"DT"[..], b"RT", b"RD", b"NT", b"ND"]
        .iter()
        .any(|e| name.ends_with(e))
    {
        name.truncate(name.len() - 2);
        name.push(b'D');
    }
    // 3. The first letter is kept; 4. the others are translated in place, left to right, and
    // each is added to the key unless it repeats the key's last letter.
    key.push(name[0]);
    for i in 1..name.len() {
        let next = name.get(i + 1).copied();
        match name[i] {
            b'E' if next == Some(b'V') => {
                name[i] = b'A';
                name[i + 1] = b'F';
            }
            b'A' | b'E' | b'I' | b'O' | b'U' => name[i] = b'A',
            b'Q' => name[i] = b'G',
            b'Z' => name[i] = b'S',
            b'M' => name[i] = b'N',
            b'K' if next == Some(b'N') => name[i] = b'N',
            b'K' => name[i] = b'C',
            b'S' if name[i + 1..].starts_with(b"CH") => {
                name[i + 1] = b'S';
                name[i + 2] = b'S';
            }
            b'P' if next == Some(b'H') => {
                name[i] = b'F';
                name[i + 1] = b'F';
            }
            b'H' if !is_vowel(name[i - 1]) || !next.is_some_and(is_vowel) => {
                name[i] = name[i - 1];
            }
            b'W' if is_vowel(name[i - 1]) => name[i] = name[i - 1],
            _ => {}
        }
        if key.last() != Some(&name[i]) {
            key.push(name[i]);
        }
    }
    // 5–7. Trailing S, AY and A.
    if key.len() > 1 && key.last() == Some(&b'S') {
        key.pop();
    }
    if key.ends_with(b"AY") {
        key.remove(key.len() - 2);
    }
    if key.len() > 1 && key.last() == Some(&b'A') {
        key.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_examples() {
        let cases = [
            ("", ""),
            ("   ", ""),
            ("ACME  Trading", "acme trading"),
            ("  Müller GmbH & Co. KG ", "muller gmbh and co kg"),
            ("Société Générale", "societe generale"),
            ("Straße", "strasse"),
            (
                "Æsir Øresund Łódź Ñandú Çeşme",
                "aesir oresund lodz nandu cesme",
            ),
            ("Đà Nẵng Nguyễn Thị", "da nang nguyen thi"),
            ("Ærø Þór ð", "aero thor d"),
            ("İstanbul ırmak", "istanbul irmak"),
            ("e\u{301}le\u{300}ve", "eleve"),
            ("O'Brien McDonald’s", "obrien mcdonalds"),
            ("AT&T", "at and t"),
            ("Coca-Cola/Rolls_Royce.", "coca cola rolls royce"),
            ("ＡＢＣ　１２３", "abc 123"),
            ("ﬁnance", "finance"),
            ("ООО «Ромашка»", "ooo romashka"),
            (
                "Щукин Хабаровск Юлия Ёлкин",
                "shchukin khabarovsk yuliya elkin",
            ),
            ("Київ Ђорђе Љубљана", "kiyiv djordje ljubljana"),
            ("Αθήνα Ψυχικό Χαλκίδα", "athina psychiko chalkida"),
            ("ΣΟΦΊΑ Σοφία", "sofia sofia"),
            ("上海 贸易", "u4e0au6d77 u8d38u6613"),
            ("tab\tnew\nline\r\u{0}nul", "tab new line nul"),
            ("10.5 kg – №7", "10 5 kg 7"),
            ("zero\u{200B}width soft\u{AD}hyphen", "zerowidth softhyphen"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_text(input), want, "{input:?}");
        }
    }

    #[test]
    fn company_examples() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("ACME Trading Co., Ltd.", "acme trading", Some("ltd")),
            ("acme trading company limited", "acme trading", Some("ltd")),
            ("Müller GmbH & Co. KG", "muller", Some("kg")),
            ("Mueller GmbH", "mueller", Some("gmbh")),
            ("Société Générale S.A.", "societe generale", Some("sa")),
            ("SOCIETE GENERALE SA", "societe generale", Some("sa")),
            (
                "Grupo Bimbo, S.A.B. de C.V.",
                "grupo bimbo",
                Some("sa de cv"),
            ),
            ("Foo S. de R.L. de C.V.", "foo", Some("s de rl de cv")),
            ("Maersk A/S", "maersk", Some("as")),
            ("Orlen Sp. z o.o.", "orlen", Some("sp zoo")),
            ("Orlen sp. z.o.o", "orlen", Some("sp zoo")),
            ("Tata Steel Pvt. Ltd.", "tata steel", Some("ltd")),
            ("Olam (Pty) Ltd", "olam", Some("ltd")),
            ("Hutchison Pte. Ltd.", "hutchison", Some("ltd")),
            ("Widgets L.L.C.", "widgets", Some("llc")),
            ("Widgets LLC", "widgets", Some("llc")),
            ("Widgets Limited Liability Company", "widgets", Some("llc")),
            ("Apple Inc.", "apple", Some("inc")),
            ("Sony Corporation", "sony", Some("corp")),
            ("Smith & Co.", "smith", Some("co")),
            ("Dupont et Cie", "dupont", Some("co")),
            ("García y Cía. Ltda.", "garcia", Some("ltda")),
            ("Philips N.V.", "philips", Some("nv")),
            // Legal forms written first, as patent applicants often are (PATSTAT).
            ("N.V. Bekaert S.A.", "bekaert", Some("sa")),
            ("N V BEKAERT", "bekaert", Some("nv")),
            ("Bekaert S.A./N.V.", "bekaert", Some("nv")),
            ("SOCIETE ANONYME COCKERILL", "cockerill", Some("sa")),
            ("Ltd Acme Glass", "acme glass", Some("ltd")),
            ("Co-operative Bank", "co operative bank", None),
            ("AG Barr", "ag barr", None),
            ("Damco B.V.", "damco", Some("bv")),
            ("Tesco PLC", "tesco", Some("plc")),
            ("Ericsson AB (publ)", "ericsson", Some("ab")),
            ("Nokia Oyj", "nokia", Some("oyj")),
            ("Toyota Tsusho K.K.", "toyota tsusho", Some("kk")),
            ("Koç Holding A.Ş.", "koc holding", Some("as")),
            ("Özlem Tekstil Ltd. Şti.", "ozlem tekstil", Some("ltd sti")),
            ("Petronas Sdn. Bhd.", "petronas", Some("sdn bhd")),
            ("ООО «Ромашка»", "romashka", Some("llc")),
            ("ZAO Romashka", "romashka", Some("jsc")),
            ("ПАО «Лукойл»", "lukoil", Some("jsc")),
            ("Lukoil PJSC", "lukoil", Some("jsc")),
            ("ТОВ «Нова Пошта»", "nova poshta", Some("llc")),
            (
                "Evergreen Marine Corp. (Taiwan) Ltd.",
                "evergreen marine corp taiwan",
                Some("ltd"),
            ),
            ("A.O. Smith Corporation", "smith", Some("corp")),
            ("Kuehne + Nagel AG", "kuehne nagel", Some("ag")),
            ("Romashka OJSC", "romashka", Some("jsc")),
            ("PT Maju Jaya Tbk", "maju jaya", Some("tbk")),
            ("PT Maju Jaya", "maju jaya", Some("pt")),
            ("Henkel AG & Co. KGaA", "henkel", Some("kgaa")),
            ("The Boeing Company", "boeing", Some("co")),
            (
                "Acme Intl. Mfg. Co.",
                "acme international manufacturing",
                Some("co"),
            ),
            ("Warner Bros. Ltd", "warner brothers", Some("ltd")),
            ("Reliance Ind. Ltd.", "reliance industries", Some("ltd")),
            (
                "Shenzhen Imp. & Exp. Co., Ltd.",
                "shenzhen import and export",
                Some("ltd"),
            ),
            (
                "Shenzhen Import Exp Co",
                "shenzhen import export",
                Some("co"),
            ),
            ("Fedex Exp", "fedex exp", None),
            ("J. P. Morgan", "jp morgan", None),
            ("JP Morgan", "jp morgan", None),
            ("Ltd", "ltd", None),
            ("Co., Ltd.", "co", Some("ltd")),
            ("The", "the", None),
            ("", "", None),
            ("  ,.;  ", "", None),
            ("Acme Trading", "acme trading", None),
            ("Acme (HK) Ltd", "acme hk", Some("ltd")),
        ];
        for &(input, core, form) in cases {
            let got = normalize_company(input);
            assert_eq!(got.core, core, "{input:?}");
            assert_eq!(got.legal_form, form, "{input:?}");
        }
    }

    #[test]
    fn spellings_of_one_company_agree() {
        let groups: &[&[&str]] = &[
            &[
                "ACME Trading Co., Ltd.",
                "acme trading company limited",
                "ACME TRADING CO LTD",
                "Acme Trading Co. Limited",
            ],
            &[
                "Müller GmbH & Co. KG",
                "MULLER GMBH & CO KG",
                "Müller GmbH u. Co. KG",
            ],
            &["A.P. Møller - Mærsk A/S", "AP Moller Maersk AS"],
        ];
        for group in groups {
            let first = normalize_company(group[0]);
            for other in &group[1..] {
                let got = normalize_company(other);
                assert_eq!(got, first, "{other:?} vs {:?}", group[0]);
            }
        }
    }

    #[test]
    fn every_canonical_form_reads_back_as_itself() {
        for (_, forms) in LEGAL_FORMS {
            for &(written, canonical) in *forms {
                let got = normalize_company(&format!("Acme {written}"));
                assert_eq!(got.legal_form, Some(canonical), "{written}");
                assert_eq!(got.core, "acme", "{written}");
                let again = normalize_company(&format!("Acme {canonical}"));
                assert_eq!(again.legal_form, Some(canonical), "{canonical}");
            }
        }
        for &(written, canonical) in PREFIX_FORMS {
            let got = normalize_company(&format!("{written} Acme"));
            assert_eq!(got.legal_form, Some(canonical), "{written}");
            assert_eq!(got.core, "acme", "{written}");
        }
    }

    #[test]
    fn tables_are_consistent() {
        let mut canonical_of: HashMap<&str, &str> = HashMap::new();
        for (_, forms) in LEGAL_FORMS {
            for &(written, canonical) in *forms {
                assert_eq!(normalize_text(written), written);
                assert_eq!(
                    join_initials(written.to_string()),
                    written,
                    "{written} would never be seen"
                );
                let before = canonical_of.insert(written, canonical);
                assert!(before.is_none_or(|c| c == canonical), "{written}");
            }
        }
        for table in [COMPANY_ABBREVIATIONS, ADDRESS_WORDS] {
            for pair in table.windows(2) {
                assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
            }
            for &(_, expansion) in table {
                assert!(
                    !table.iter().any(|(k, _)| *k == expansion),
                    "{expansion} expands again"
                );
            }
        }
        for &(_, expansion) in COMPANY_ABBREVIATIONS {
            assert!(
                !canonical_of.contains_key(expansion),
                "{expansion} is a legal form"
            );
        }
    }

    #[test]
    fn documented() {
        let doc = include_str!("../../../docs/linkage-normalisation.md");
        let mut missing = Vec::new();
        for (_, forms) in LEGAL_FORMS {
            for &(written, canonical) in *forms {
                for w in [written, canonical] {
                    if !doc.contains(&format!("`{w}`")) {
                        missing.push(w);
                    }
                }
            }
        }
        let words = PREFIX_FORMS
            .iter()
            .chain(COMPANY_ABBREVIATIONS)
            .chain(ADDRESS_WORDS)
            .flat_map(|&(a, b)| [a, b])
            .chain(STREET_SUFFIXES.iter().copied())
            .chain(PO_BOX_FORMS.iter().copied());
        for w in words {
            if !doc.contains(&format!("`{w}`")) {
                missing.push(w);
            }
        }
        assert!(missing.is_empty(), "not in the doc: {missing:?}");
    }

    #[test]
    fn address_examples() {
        let cases = [
            ("12 Stanley St.", "12 stanley street"),
            ("12 stanley street", "12 stanley street"),
            ("Hauptstraße 5", "haupt street 5"),
            ("Hauptstr. 5", "haupt street 5"),
            ("Haupt-Str. 5", "haupt street 5"),
            ("Kalverstraat 1", "kalver street 1"),
            ("177 pridhamstreet", "177 pridham street"),
            ("5 Wittenoom Cres", "5 wittenoom crescent"),
            ("Av. Paulista, 1000", "avenue paulista 1000"),
            ("Avenida Paulista 1000", "avenue paulista 1000"),
            (
                "1600 Pennsylvania Ave NW",
                "1600 pennsylvania avenue northwest",
            ),
            (
                "1600 Pennsylvania Avenue N.W.",
                "1600 pennsylvania avenue northwest",
            ),
            ("10 N. Main Rd", "10 north main road"),
            (
                "Ste 400, 3rd Fl., Bldg. C",
                "suite 400 3rd floor building c",
            ),
            ("Apt 4B", "apartment 4b"),
            ("P.O. Box 123", "po box 123"),
            ("PO BOX 123", "po box 123"),
            ("POB 123", "po box 123"),
            ("Post Office Box 123", "po box 123"),
            ("Postfach 123", "po box 123"),
            ("No. 12 Nanjing Rd", "12 nanjing road"),
            ("Nr. 12", "12"),
            ("no no 5", "5"),
            ("No Name Lane", "no name lane"),
            ("Hwy 1", "highway 1"),
            ("Kings Blvd", "kings boulevard"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_address(input), want, "{input:?}");
        }
        for form in PO_BOX_FORMS {
            assert_eq!(
                normalize_address(&format!("{form} 7")),
                "po box 7",
                "{form}"
            );
        }
        assert_eq!(
            normalize_address("12 Stanley St."),
            normalize_address("12 stanley street")
        );
    }

    #[test]
    fn tokens_and_jaccard() {
        assert_eq!(tokens(" a  b c "), vec!["a", "b", "c"]);
        assert!(tokens("").is_empty());
        let cases = [
            ("", "", 1.0),
            ("a", "", 0.0),
            ("", "a", 0.0),
            ("a b", "a b", 1.0),
            ("a b", "b a", 1.0),
            ("a a b", "a b", 1.0),
            ("a b", "b c", 1.0 / 3.0),
            ("acme trading", "acme logistics", 1.0 / 3.0),
            ("a b c d", "a b", 0.5),
            ("x", "y", 0.0),
        ];
        for (a, b, want) in cases {
            let got = jaccard_tokens(a, b);
            assert!((got - want).abs() < 1e-12, "{a:?} {b:?}: {got}");
        }
        // Past the stack buffer.
        let many: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        let half: Vec<String> = (0..50).map(|i| format!("w{i}")).collect();
        let got = jaccard_tokens(&many.join(" "), &half.join(" "));
        assert!((got - 0.5).abs() < 1e-12);
        let repeated = "w ".repeat(100);
        assert_eq!(jaccard_tokens(&repeated, "w"), 1.0);
    }

    #[test]
    fn nysiis_examples() {
        // Apache Commons Codec NysiisTest (non-strict) and the examples of Taft (1970).
        let cases = [
            ("Brian", "BRAN"),
            ("Brown", "BRAN"),
            ("Brun", "BRAN"),
            ("Braun", "BRAN"),
            ("Capp", "CAP"),
            ("Cope", "CAP"),
            ("Copp", "CAP"),
            ("Kipp", "CAP"),
            ("Dent", "DAD"),
            ("Phil", "FAL"),
            ("Schmidt", "SNAD"),
            ("Smith", "SNAT"),
            ("Schmit", "SNAT"),
            ("Trueman", "TRANAN"),
            ("Truman", "TRANAN"),
            ("O'Daniel", "ODANAL"),
            ("O'Donnell", "ODANAL"),
            ("Cory", "CARY"),
            ("Corey", "CARY"),
            ("Kory", "CARY"),
            ("Kobwick", "CABWAC"),
            ("Kocher", "CACAR"),
            ("Fesca", "FASC"),
            ("Shom", "SAN"),
            ("Ohlo", "OL"),
            ("Uhu", "UH"),
            ("Um", "UN"),
            ("Macintosh", "MCANT"),
            ("Knuth", "NAT"),
            ("Koehn", "CAN"),
            ("Phillipson", "FALAPSAN"),
            ("Pfeister", "FASTAR"),
            ("McKee", "MCY"),
            ("Mackie", "MCY"),
            ("Heitschmidt", "HATSNAD"),
            ("Bart", "BAD"),
            ("Hurd", "HAD"),
            ("Hunt", "HAD"),
            ("Westerlund", "WASTARLAD"),
            ("Casstevens", "CASTAFAN"),
            ("Vasquez", "VASG"),
            ("Frazier", "FRASAR"),
            ("Bowman", "BANAN"),
            ("Rickert", "RACAD"),
            ("Deutsch", "DAT"),
            ("Westphal", "WASTFAL"),
            ("Shriver", "SRAVAR"),
            ("Kuhl", "CAL"),
            ("Rawson", "RASAN"),
            ("Jiles", "JAL"),
            // Rule 6 (AY → Y) applies; some implementations skip it and give CARAY.
            ("Carraway", "CARY"),
            ("Yamada", "YANAD"),
            ("Knight", "NAGT"),
            ("Mitchell", "MATCAL"),
            ("Watkins", "WATCAN"),
            ("Sarah", "SAR"),
            ("Sara", "SAR"),
        ];
        for (name, want) in cases {
            assert_eq!(phonetic(name), want, "{name}");
        }
        assert_eq!(phonetic("Müller Braun 42"), phonetic("muller brown 42"));
        assert_eq!(phonetic("Müller"), phonetic("Mueller"));
        assert_eq!(phonetic("Mohammed"), phonetic("Muhammad"));
        assert_eq!(phonetic("Nguyễn"), "NGAYAN");
        assert_eq!(phonetic(""), "");
        assert_eq!(phonetic("s"), "S");
        assert_eq!(phonetic("a"), "A");
        assert_eq!(phonetic("中"), "u4e2d");
    }

    /// Words that exercise the rules: legal forms, connectors, initials, abbreviations, street
    /// words, number words.
    fn vocabulary() -> impl Strategy<Value = String> {
        let words = prop::sample::select(vec![
            "the",
            "and",
            "&",
            "co",
            "co.",
            "ltd",
            "Ltd.",
            "limited",
            "gmbh",
            "kg",
            "ag",
            "sa",
            "s.a.",
            "de",
            "c.v.",
            "sp.",
            "z",
            "o.o.",
            "a",
            "b",
            "s",
            "e",
            "n",
            "w",
            "p",
            "o",
            "box",
            "pob",
            "no",
            "nr",
            "12",
            "5th",
            "st",
            "str",
            "strasse",
            "hauptstr",
            "straat",
            "str.str",
            "imp",
            "exp",
            "intl",
            "ind",
            "ooo",
            "ao",
            "pt",
            "acme",
            "trading",
            "müller",
            "société",
            "Ромашка",
            "中",
            "north",
            "east",
            "y",
            "et",
            "cie",
            "inc",
            "corp",
            "llc",
            "x",
            "-",
            "/",
            ",",
            "'",
        ]);
        prop::collection::vec(words, 0..10).prop_map(|w| w.join(" "))
    }

    fn is_clean(s: &str) -> bool {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b' ')
            && !s.contains("  ")
            && !s.starts_with(' ')
            && !s.ends_with(' ')
    }

    fn check_all(s: &str) -> Result<(), TestCaseError> {
        let text = normalize_text(s);
        prop_assert!(is_clean(&text), "{:?}", text);
        prop_assert_eq!(normalize_text(&text), text.clone());
        let address = normalize_address(s);
        prop_assert!(is_clean(&address), "{:?}", address);
        prop_assert_eq!(normalize_address(&address), address.clone());
        let company = normalize_company(s);
        prop_assert!(is_clean(&company.core), "{:?}", company.core);
        prop_assert_eq!(normalize_company(&company.core).core, company.core.clone());
        prop_assert!(company.legal_form.is_none() || !company.core.is_empty());
        prop_assert_eq!(company.core.is_empty(), text.is_empty());
        let key = phonetic(s);
        prop_assert!(key.is_ascii() && !key.contains("  "));
        prop_assert_eq!(tokens(&key).len(), tokens(&text).len());
        Ok(())
    }

    proptest! {
        #[test]
        fn arbitrary_unicode(s in any::<String>()) {
            check_all(&s)?;
        }

        #[test]
        fn trade_words(s in vocabulary()) {
            check_all(&s)?;
        }

        #[test]
        fn jaccard_bounds_and_symmetry(a in vocabulary(), b in vocabulary()) {
            let (a, b) = (normalize_text(&a), normalize_text(&b));
            let ab = jaccard_tokens(&a, &b);
            prop_assert!((0.0..=1.0).contains(&ab));
            prop_assert_eq!(ab, jaccard_tokens(&b, &a));
            prop_assert_eq!(jaccard_tokens(&a, &a), 1.0);
        }

        #[test]
        fn jaccard_arbitrary(a in any::<String>(), b in any::<String>()) {
            let ab = jaccard_tokens(&a, &b);
            prop_assert!((0.0..=1.0).contains(&ab));
            prop_assert_eq!(ab, jaccard_tokens(&b, &a));
        }
    }
}
