//! `unsafe` in `pki` lives in two leaf modules, `sm4::x86` (SM4's
//! intrinsics) and `sm2_verify::x86` (the SM2 field's assembly): the crate
//! denies `unsafe_code`, each module is allowed it by one attribute on its
//! `mod x86;` declaration (nothing wider), denies unsafe operations outside
//! unsafe blocks, and has a SAFETY comment before each unsafe block.

/// The modules allowed `unsafe`, each `<dir>/x86.rs` declared in
/// `<dir>/mod.rs`; sorted, as the allowances found are.
const MODULES: [&str; 2] = ["sm2_verify", "sm4"];

#[test]
fn unsafe_is_allowed_in_two_modules() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut allowances = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let lines: Vec<&str> = text.lines().collect();
                for (n, line) in lines.iter().enumerate() {
                    if line.contains("allow(unsafe_code)") || line.contains("expect(unsafe_code)") {
                        let relative = path.strip_prefix(&src).unwrap().display().to_string();
                        // On the module's declaration, not on anything
                        // wider (a file-wide `#![allow]` would be).
                        assert_eq!(
                            (line.trim(), lines.get(n + 1).map(|l| l.trim())),
                            ("#[allow(unsafe_code)]", Some("mod x86;")),
                            "{relative}:{}",
                            n + 1
                        );
                        allowances.push(relative);
                    }
                }
            }
        }
    }
    allowances.sort();
    assert_eq!(
        allowances,
        MODULES.map(|m| format!("{m}/mod.rs")),
        "allow/expect(unsafe_code)"
    );
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    assert!(lib.contains("#![deny(unsafe_code)]"));

    for module in MODULES.map(|m| format!("{m}/x86.rs")) {
        let text = std::fs::read_to_string(src.join(&module)).unwrap();
        assert!(
            text.contains("#![deny(unsafe_op_in_unsafe_fn)]"),
            "{module}"
        );
        let lines: Vec<&str> = text.lines().collect();
        let mut blocks = 0;
        for (n, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("unsafe {") {
                blocks += 1;
                let before = &lines[n.saturating_sub(4)..n];
                assert!(
                    before
                        .iter()
                        .any(|l| l.trim_start().starts_with("// SAFETY:")),
                    "{module}:{}: an unsafe block without a SAFETY comment",
                    n + 1
                );
            }
        }
        assert!(blocks > 0, "{module}");
    }
}
