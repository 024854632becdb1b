//! PATSTAT-like company records for deduplication: patent applicants as a patent office writes
//! them, one row per filing, with the entity in a `cluster` column.
//!
//! The spellings of one applicant differ the way they do in PATSTAT: case, punctuation, the
//! legal form spelt out, abbreviated, moved before the name or left out ("BEKAERT SA",
//! "N.V. Bekaert S.A.", "Bekaert"), "&" for "and", diacritics dropped, a typo, a word left out;
//! addresses are often missing or of another site; coordinates are `0.0` when unknown (as in
//! PATSTAT's geocoded tables), so a missing position looks like a number. Applicants include
//! individuals ("DUPONT, JEAN") and institutions with long names that share their first words
//! ("UNIVERSITE CATHOLIQUE DE LOUVAIN", "UNIVERSITE LIBRE DE BRUXELLES"), and filings per
//! applicant are heavy-tailed: most file once, a few file dozens of times.

use borderlens_domain::rng::Rng;

use crate::{entity_rng, rows_in_parallel, Records};

/// Column names of [`companies_dedupe`], in order.
pub const COMPANY_COLUMNS: [&str; 7] = [
    "person_id",
    "person_name",
    "person_address",
    "person_ctry_code",
    "lat",
    "lng",
    "cluster",
];

const STREAM_COMPANY: u64 = 0x434F_4D50;

/// Syllables of brand and family names.
const SYLLABLES: [&str; 48] = [
    "be", "kaert", "sol", "vay", "ag", "fa", "ge", "vaert", "um", "ic", "ore", "bar", "co", "la",
    "van", "hool", "jans", "sen", "pee", "ters", "mae", "ne", "wou", "ters", "dier", "ickx", "ver",
    "haeg", "lie", "bert", "mo", "rel", "dal", "tex", "pro", "ton", "tri", "nor", "vi", "sta",
    "kron", "ber", "gen", "ros", "mont", "ell", "ard", "quin",
];

/// Words of trade and institution names; accented forms are as a French or Flemish filer
/// writes them.
const TRADE_WORDS: [&str; 30] = [
    "ENGINEERING",
    "PHARMACEUTICA",
    "CHEMICALS",
    "INDUSTRIES",
    "TECHNOLOGIES",
    "SYSTEMS",
    "HOLDING",
    "INTERNATIONAL",
    "ELECTRONICS",
    "MATERIALS",
    "SOCIÉTÉ GÉNÉRALE",
    "CONSTRUCTIONS",
    "ÉNERGIE",
    "GLASS",
    "STEEL",
    "TEXTILES",
    "BIOTECH",
    "FOODS",
    "PLASTICS",
    "MACHINES",
    "RESEARCH",
    "MÉTALLURGIE",
    "DEVELOPMENT",
    "MEDICAL",
    "PACKAGING",
    "LOGISTICS",
    "AUTOMATION",
    "COATINGS",
    "DIAGNOSTICS",
    "INSTRUMENTS",
];

const INSTITUTIONS: [&str; 8] = [
    "UNIVERSITÉ CATHOLIQUE DE",
    "UNIVERSITÉ LIBRE DE",
    "KATHOLIEKE UNIVERSITEIT",
    "UNIVERSITEIT",
    "CENTRE DE RECHERCHES DE",
    "VLAAMSE INSTELLING VOOR TECHNOLOGISCH ONDERZOEK",
    "INSTITUT NATIONAL DE",
    "HOSPITAL OF",
];

const GIVEN: [&str; 16] = [
    "JEAN",
    "MARC",
    "PIETER",
    "ANNE",
    "LUC",
    "SOPHIE",
    "JAN",
    "MARIE",
    "DIRK",
    "FRANÇOIS",
    "KOEN",
    "ELS",
    "PAUL",
    "HÉLÈNE",
    "GEERT",
    "ANDRÉ",
];

/// Legal forms: the spellings a filer may use for one form.
const FORMS: [&[&str]; 12] = [
    &["SA", "S.A.", "S A", "SOCIETE ANONYME", "SOCIÉTÉ ANONYME"],
    &["NV", "N.V.", "N V", "NAAMLOZE VENNOOTSCHAP"],
    &["SA/NV", "S.A./N.V.", "NV SA"],
    &["BVBA", "B.V.B.A."],
    &["SPRL", "S.P.R.L."],
    &[
        "GMBH",
        "GmbH",
        "G.M.B.H.",
        "GESELLSCHAFT MIT BESCHRANKTER HAFTUNG",
    ],
    &["AG", "A.G.", "AKTIENGESELLSCHAFT"],
    &["LTD", "LTD.", "LIMITED"],
    &["INC", "INC.", "INCORPORATED"],
    &["CORP", "CORP.", "CORPORATION"],
    &["CO", "CO.", "COMPANY"],
    &["PLC", "P.L.C.", "PUBLIC LIMITED COMPANY"],
];

/// Cities with their coordinates and postcode.
const CITIES: [(&str, f64, f64, &str); 12] = [
    ("BRUXELLES", 50.8503, 4.3517, "1000"),
    ("LEUVEN", 50.8798, 4.7005, "3000"),
    ("LOUVAIN-LA-NEUVE", 50.6681, 4.6118, "1348"),
    ("GENT", 51.0543, 3.7174, "9000"),
    ("ANTWERPEN", 51.2194, 4.4025, "2000"),
    ("LIÈGE", 50.6326, 5.5797, "4000"),
    ("ZWEVEGEM", 50.8121, 3.3376, "8550"),
    ("MONS", 50.4542, 3.9523, "7000"),
    ("NAMUR", 50.4674, 4.8720, "5000"),
    ("MECHELEN", 51.0259, 4.4776, "2800"),
    ("KORTRIJK", 50.8280, 3.2649, "8500"),
    ("HASSELT", 50.9307, 5.3378, "3500"),
];

const STREETS: [&str; 10] = [
    "RUE DE LA LOI",
    "BEKAERTSTRAAT",
    "AVENUE LOUISE",
    "KAPELDREEF",
    "CHAUSSÉE DE WAVRE",
    "INDUSTRIEPARK",
    "BOULEVARD DU SOUVERAIN",
    "KORTRIJKSESTEENWEG",
    "PLACE DE L'UNIVERSITÉ",
    "HAVENLAAN",
];

const COUNTRIES: [&str; 6] = ["NL", "FR", "DE", "US", "GB", "LU"];

/// One applicant as it is: its name parts and where it is.
struct Applicant {
    /// Words of the name without legal form.
    core: Vec<String>,
    /// Index into [`FORMS`], none for individuals and institutions.
    form: Option<usize>,
    /// An individual: written "SURNAME, GIVEN".
    person: bool,
    city: usize,
    /// Where the applicant's site geocodes: its city, moved by up to about 5 km.
    offset: (f64, f64),
    street: usize,
    number: usize,
    country: &'static str,
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len())]
}

/// A brand or family name of two or three syllables.
fn brand(rng: &mut Rng) -> String {
    let n = 2 + rng.below(2);
    (0..n)
        .map(|_| *pick(rng, &SYLLABLES))
        .collect::<String>()
        .to_uppercase()
}

fn applicant(rng: &mut Rng) -> Applicant {
    let city = rng.below(CITIES.len());
    let x = rng.next_f64();
    let (core, form, person) = if x < 0.12 {
        // An individual inventor filing alone.
        let mut core = vec![brand(rng)];
        core.push(pick(rng, &GIVEN).to_string());
        (core, None, true)
    } else if x < 0.2 {
        // An institution: long generic words, then a place or a name.
        let mut core: Vec<String> = pick(rng, &INSTITUTIONS)
            .split(' ')
            .map(str::to_string)
            .collect();
        core.push(if rng.next_f64() < 0.5 {
            CITIES[city].0.to_string()
        } else {
            brand(rng)
        });
        (core, None, false)
    } else {
        // A firm: a brand, sometimes a second brand word or trade words.
        let mut core = vec![brand(rng)];
        let y = rng.next_f64();
        if y < 0.25 {
            core.push(brand(rng));
        } else if y < 0.6 {
            core.extend(pick(rng, &TRADE_WORDS).split(' ').map(str::to_string));
        } else if y < 0.7 {
            core.push("&".into());
            core.push(brand(rng));
        }
        (core, Some(rng.below(FORMS.len())), false)
    };
    let country = if rng.next_f64() < 0.75 {
        "BE"
    } else {
        *pick(rng, &COUNTRIES)
    };
    Applicant {
        core,
        form,
        person,
        city,
        offset: ((rng.next_f64() - 0.5) * 0.1, (rng.next_f64() - 0.5) * 0.1),
        street: rng.below(STREETS.len()),
        number: 1 + rng.below(250),
        country,
    }
}

/// Filings of one applicant: heavy-tailed, most file once.
fn filings(rng: &mut Rng) -> usize {
    let x = rng.next_f64();
    if x < 0.45 {
        1
    } else if x < 0.7 {
        2
    } else if x < 0.85 {
        3 + rng.below(3)
    } else {
        6 + (40.0 * rng.next_f64().powi(3)) as usize
    }
}

fn strip_accents(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'É' | 'È' | 'Ê' => 'E',
            'À' | 'Â' => 'A',
            'Ç' => 'C',
            'Ô' => 'O',
            'Û' | 'Ü' => 'U',
            c => c,
        })
        .collect()
}

/// Title case: "BEKAERT TEXTILES" → "Bekaert Textiles".
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.push(c);
        } else {
            out.extend(c.to_lowercase());
        }
        start = !c.is_alphanumeric();
    }
    out
}

/// One character changed, dropped or doubled in a word of more than four letters.
fn typo(words: &mut [String], rng: &mut Rng) {
    let long: Vec<usize> = (0..words.len())
        .filter(|&i| words[i].chars().count() > 4 && words[i].is_ascii())
        .collect();
    if long.is_empty() {
        return;
    }
    let w = &mut words[long[rng.below(long.len())]];
    let mut chars: Vec<char> = w.chars().collect();
    let at = 1 + rng.below(chars.len() - 1);
    match rng.below(3) {
        0 => {
            chars.remove(at);
        }
        1 => chars.insert(at, chars[at]),
        _ => chars[at] = (b'A' + rng.below(26) as u8) as char,
    }
    *w = chars.into_iter().collect();
}

/// One filing's row of applicant `a`.
fn filing(a: &Applicant, person_id: String, cluster: usize, rng: &mut Rng) -> Vec<String> {
    let mut words = a.core.clone();
    if words.len() > 3 && rng.next_f64() < 0.15 {
        // A long name shortened: a middle word left out.
        words.remove(1 + rng.below(words.len() - 2));
    }
    if rng.next_f64() < 0.12 {
        typo(&mut words, rng);
    }
    for w in &mut words {
        if w == "&" && rng.next_f64() < 0.5 {
            *w = pick(rng, &["AND", "ET", "EN"]).to_string();
        }
    }
    let mut name = if a.person {
        format!("{}, {}", words[0], words[1..].join(" "))
    } else {
        words.join(" ")
    };
    if let Some(f) = a.form {
        let spellings = FORMS[f];
        let x = rng.next_f64();
        if x < 0.5 {
            let sep = if rng.next_f64() < 0.3 { ", " } else { " " };
            name = format!("{name}{sep}{}", pick(rng, spellings));
        } else if x < 0.65 {
            name = format!("{} {name}", pick(rng, spellings));
        } else if x < 0.72 {
            // Two forms, as bilingual Belgian filers write them.
            name = format!(
                "{name} {} {}",
                pick(rng, &["SA", "S.A."]),
                pick(rng, &["NV", "N.V."])
            );
        }
        // Else the legal form is left out.
    }
    if rng.next_f64() < 0.5 {
        name = strip_accents(&name);
    }
    let x = rng.next_f64();
    if x < 0.25 {
        name = title(&name);
    } else if x < 0.3 {
        name = name.to_lowercase();
    }
    let (city, lat, lng, postcode) = CITIES[a.city];
    let address = if rng.next_f64() < 0.45 {
        String::new()
    } else if rng.next_f64() < 0.15 {
        // Another site of the applicant.
        let (other, _, _, code) = *pick(rng, &CITIES);
        format!(
            "{} {}, {code} {other}",
            pick(rng, &STREETS),
            1 + rng.below(250)
        )
    } else {
        format!("{} {}, {postcode} {city}", STREETS[a.street], a.number)
    };
    let address = if rng.next_f64() < 0.5 {
        strip_accents(&address)
    } else {
        address
    };
    let country = if rng.next_f64() < 0.08 {
        String::new()
    } else {
        a.country.to_string()
    };
    // Geocoded filings only; the others carry 0.0, as in PATSTAT. A filing geocodes to the
    // applicant's site, or (one in five) only to the centre of its city.
    let x = rng.next_f64();
    let (lat, lng) = if x < 0.55 {
        ("0.0".to_string(), "0.0".to_string())
    } else if x < 0.64 {
        (format!("{lat:.4}"), format!("{lng:.4}"))
    } else {
        (
            format!("{:.4}", lat + a.offset.0),
            format!("{:.4}", lng + a.offset.1),
        )
    };
    vec![
        person_id,
        name,
        address,
        country,
        lat,
        lng,
        cluster.to_string(),
    ]
}

/// One source of PATSTAT-like applicant rows for deduplication, about `n_records` rows (whole
/// applicants, so a few more), shuffled; `person_id` is the row number and `cluster` the
/// applicant. Columns: [`COMPANY_COLUMNS`].
///
/// The same arguments always give the same output.
pub fn companies_dedupe(n_records: usize, seed: u64) -> Records {
    let mut slots: Vec<(usize, usize)> = Vec::with_capacity(n_records + 64);
    let mut k = 0;
    while slots.len() < n_records {
        let copies = filings(&mut entity_rng(seed, STREAM_COMPANY ^ 1, k, 0));
        slots.extend((0..copies).map(|j| (k, j)));
        k += 1;
    }
    Rng::new(seed ^ STREAM_COMPANY).shuffle(&mut slots);
    let rows = rows_in_parallel(slots.len(), |p| {
        let (k, j) = slots[p];
        let a = applicant(&mut entity_rng(seed, STREAM_COMPANY, k, 0));
        filing(
            &a,
            (p + 1).to_string(),
            k,
            &mut entity_rng(seed, STREAM_COMPANY, k, j + 1),
        )
    });
    Records {
        columns: COMPANY_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
        rows,
    }
}

/// Columns of [`parties_register`].
pub const PARTY_COLUMNS: [&str; 5] = ["party_id", "name", "address", "country", "eori"];

const STREAM_PARTY: u64 = 0x5041_5254;

/// A register of trade parties for the given ids (importer and declarant ids as declarations
/// carry them), PATSTAT-like firm names and addresses as [`companies_dedupe`] makes them, and a
/// known truth: a share `two_id_share` of the firms hold two ids, spelled as two filings of
/// one applicant (case, legal form, accents, typos, an address missing or of another site).
/// EORI numbers: a firm's own (its country and 12 digits), missing for about a third of the
/// ids; a firm's second id carries the same number half the time, else none; two firms share
/// one only by chance (12 random digits). Returns the rows ([`PARTY_COLUMNS`], in the order of `ids`) and the pairs of ids
/// of one firm.
///
/// The same arguments always give the same output.
pub fn parties_register(
    ids: &[String],
    two_id_share: f64,
    seed: u64,
) -> (Records, Vec<(String, String)>) {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    Rng::new(seed ^ STREAM_PARTY).shuffle(&mut order);
    // Firm k holds the ids at `order[start..start + n]`.
    let mut firm_of = vec![(0usize, 0usize); ids.len()];
    let mut pairs = Vec::new();
    let (mut p, mut k) = (0, 0);
    while p < order.len() {
        let two = p + 1 < order.len()
            && entity_rng(seed, STREAM_PARTY ^ 1, k, 0).next_f64() < two_id_share;
        firm_of[order[p]] = (k, 0);
        if two {
            firm_of[order[p + 1]] = (k, 1);
            pairs.push((ids[order[p]].clone(), ids[order[p + 1]].clone()));
        }
        p += if two { 2 } else { 1 };
        k += 1;
    }
    let rows = rows_in_parallel(ids.len(), |i| {
        let (k, j) = firm_of[i];
        let mut firm_rng = entity_rng(seed, STREAM_PARTY, k, 0);
        let mut a = applicant(&mut firm_rng);
        // A register holds thousands of firms: three-syllable brands (48^3 of them) keep
        // distinct firms from sharing a name far more often than real registers do.
        a.core[0] = (0..3)
            .map(|_| *pick(&mut firm_rng, &SYLLABLES))
            .collect::<String>()
            .to_uppercase();
        let eori = format!("{}{:012}", a.country, firm_rng.below(1_000_000_000_000));
        let mut rng = entity_rng(seed, STREAM_PARTY, k, j + 1);
        let filed = filing(&a, ids[i].clone(), k, &mut rng);
        let eori = match j {
            0 if rng.next_f64() < 0.35 => String::new(),
            0 => eori,
            _ if rng.next_f64() < 0.5 => eori,
            _ => String::new(),
        };
        vec![
            ids[i].clone(),
            filed[1].clone(),
            filed[2].clone(),
            filed[3].clone(),
            eori,
        ]
    });
    (
        Records {
            columns: PARTY_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
            rows,
        },
        pairs,
    )
}
