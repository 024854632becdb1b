//! Assertions for chart tests (here and in other report crates): well-formed SVG, no NaN.

/// Minimal well-formedness check: balanced, properly nested tags, quoted attributes, only
/// known entities, a single root, no raw `<`/`&` in text, the SVG root attributes.
pub fn assert_well_formed(svg: &str) {
    let bytes = svg.as_bytes();
    let mut stack: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut i = 0;
    let check_entities = |text: &str| {
        let mut rest = text;
        while let Some(p) = rest.find('&') {
            let after = &rest[p..];
            let ok = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|e| after.starts_with(e));
            assert!(ok, "bad entity near {:?}", &after[..after.len().min(10)]);
            rest = &after[1..];
        }
    };
    while i < bytes.len() {
        if bytes[i] == b'<' {
            let start = i;
            let mut quote: Option<u8> = None;
            i += 1;
            while i < bytes.len() {
                let b = bytes[i];
                match quote {
                    Some(q) if b == q => quote = None,
                    Some(_) => assert!(b != b'<', "raw < in attribute"),
                    None if b == b'"' || b == b'\'' => quote = Some(b),
                    None if b == b'>' => break,
                    None => assert!(b != b'<', "nested <"),
                }
                i += 1;
            }
            assert!(i < bytes.len(), "unterminated tag at {start}");
            let tag = &svg[start + 1..i];
            check_entities(tag);
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().expect("closing tag without opening");
                assert_eq!(open, name.trim(), "mismatched tags");
            } else {
                let self_closing = tag.ends_with('/');
                let name: String = tag
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '/')
                    .collect();
                assert!(!name.is_empty(), "empty tag name");
                if stack.is_empty() {
                    roots += 1;
                }
                if !self_closing {
                    stack.push(name);
                }
            }
            i += 1;
        } else {
            let next = svg[i..].find('<').map_or(svg.len(), |p| i + p);
            let text = &svg[i..next];
            check_entities(text);
            if stack.is_empty() {
                assert!(text.trim().is_empty(), "text outside root: {text:?}");
            }
            i = next;
        }
    }
    assert!(stack.is_empty(), "unclosed tags: {stack:?}");
    assert_eq!(roots, 1, "exactly one root element");
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.contains("viewBox=\"0 0 "));
    assert!(svg.contains("font-family=\"sans-serif\""));
}

/// No non-finite number was written.
pub fn assert_no_nan(svg: &str) {
    for bad in ["NaN", "inf", "Inf"] {
        assert!(!svg.contains(bad), "{bad} in {svg}");
    }
}
