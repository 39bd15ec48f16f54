use super::*;

fn scope() -> Scope<'static> {
    Scope {
        inputs: ["ref"].into(),
        matrix: ["shard"].into(),
        upstream: ["build", "wait-ready"].into(),
        nodes: ["build", "wait-ready", "test", "deploy"].into(),
        node: "test",
        own_outputs: false,
    }
}

fn refused(source: &str) -> ExprError {
    check(source, &scope()).expect_err(source)
}

#[test]
fn names_in_scope_pass() {
    for ok in [
        "inputs.ref == 'main'",
        "matrix.shard != '2' && jobs.build.phase == 'Succeeded'",
        "jobs['wait-ready'].outputs.ready == 'yes'",
        "has(jobs.build.outputs.version)",
        "workflow.run > 1",
        "[1, 2].exists(x, x == 2)",
        "jobs.build.outputs.all(k, k != '')",
    ] {
        check(ok, &scope()).unwrap_or_else(|e| panic!("{ok}: {e:?}"));
    }
}

#[test]
fn a_syntax_error_says_where() {
    let e = refused("inputs.ref ==");
    assert!(e.message.contains("not a valid CEL expression"), "{e:?}");
    assert!(e.message.contains("column"), "{e:?}");
    assert!(refused("  ").message.contains("empty"));
}

#[test]
fn unknown_roots_inputs_keys_and_nodes_are_named() {
    assert!(
        refused("foo == 1")
            .message
            .contains("unknown variable \"foo\"")
    );
    assert!(
        refused("inputs.tag == 'x'")
            .message
            .contains("no input \"tag\" (it has ref)")
    );
    assert!(
        refused("matrix.os == 'x'")
            .message
            .contains("no key \"os\"")
    );
    assert!(
        refused("jobs.nope.phase == 'x'")
            .message
            .contains("no node \"nope\"")
    );
    assert!(
        refused("jobs.build.status == 'x'")
            .message
            .contains("has no \"status\"")
    );
    assert!(
        refused("jobs[inputs.ref].phase == 'x'")
            .message
            .contains("names no node")
    );
    assert!(
        refused("workflow.name == 'x'")
            .message
            .contains("no \"name\"")
    );
    // `outputs` is only for until.
    assert!(
        refused("outputs.ready == 'yes'")
            .message
            .contains("unknown variable")
    );
    let until = Scope {
        own_outputs: true,
        ..scope()
    };
    check("outputs.ready == 'yes'", &until).unwrap();
}

#[test]
fn a_node_that_is_not_upstream_is_refused_with_the_fix() {
    let e = refused("jobs.deploy.phase == 'Succeeded'");
    assert!(e.message.contains("not upstream of \"test\""), "{e:?}");
    assert!(e.fix.contains("needs of \"test\""), "{e:?}");
}

#[test]
fn a_matrix_reference_on_a_plain_node_is_refused() {
    let plain = Scope {
        matrix: BTreeSet::new(),
        ..scope()
    };
    assert!(
        check("matrix.shard == '1'", &plain)
            .unwrap_err()
            .message
            .contains("has no matrix")
    );
}

#[test]
fn templates_split_check_and_render() {
    assert_eq!(
        pieces("a ${{ x }} b ${{y}}").unwrap(),
        vec![
            Piece::Text("a "),
            Piece::Expr("x"),
            Piece::Text(" b "),
            Piece::Expr("y")
        ]
    );
    assert!(
        pieces("a ${{ x")
            .unwrap_err()
            .message
            .contains("never closed")
    );
    assert!(check_template("echo ${{ nope.x }}", &scope()).is_err());
    check_template(
        "echo ${{ matrix.shard }} of ${{ jobs.build.outputs.version }}",
        &scope(),
    )
    .unwrap();

    let vars = Vars {
        inputs: [("ref".to_string(), "main".to_string())].into(),
        matrix: [("shard".to_string(), "2".to_string())].into(),
        jobs: [(
            "build".to_string(),
            NodeVars {
                phase: "Succeeded".into(),
                outputs: [("version".to_string(), "1.2".to_string())].into(),
            },
        )]
        .into(),
        run: 3,
        outputs: None,
    };
    assert_eq!(
        render("shard ${{ matrix.shard }} of ${{ jobs.build.outputs.version }} run ${{ workflow.run }}", &vars).unwrap(),
        "shard 2 of 1.2 run 3"
    );
    assert_eq!(render("no template", &vars).unwrap(), "no template");
    assert!(
        render("${{ jobs.build.outputs.missing }}", &vars)
            .unwrap_err()
            .contains("cannot be evaluated")
    );
    assert!(
        render("${{ jobs.build.outputs }}", &vars)
            .unwrap_err()
            .contains("no text form")
    );

    assert!(eval_bool("inputs.ref == 'main' && workflow.run == 3", &vars).unwrap());
    assert!(!eval_bool("jobs.build.phase == 'Failed'", &vars).unwrap());
    assert!(
        eval_bool("inputs.ref", &vars)
            .unwrap_err()
            .contains("not true or false")
    );
}

/// Found by the CEL fuzz target: 16 nested parentheses or 40 nested lists overflowed a
/// 2 MiB thread's stack in the generated parser (in a debug build), aborting the process.
#[test]
fn regression_deep_nesting_is_parsed_on_a_stack_that_fits_or_refused() {
    for depth in [16, 40, 90] {
        let parens = format!(
            "{}inputs.ref == 'main'{}",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        check(&parens, &scope()).unwrap_or_else(|e| panic!("{depth} parentheses: {e:?}"));
        let lists = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        check(&lists, &scope()).unwrap_or_else(|e| panic!("{depth} lists: {e:?}"));
    }
    // Past the parser's own limit of 96 levels: refused, saying so.
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    let e = refused(&deep);
    assert!(e.message.contains("Recursion limit"), "{e:?}");
    let vars = Vars::default();
    assert!(eval_bool(&deep, &vars).is_err());
    // A long chain of operators is one deep tree too.
    let chain = vec!["1"; 900].join("+");
    assert!(check(&format!("{chain} > 0"), &scope()).is_ok());
    assert!(eval_bool(&format!("{chain} > 0"), &vars).unwrap());
}

#[test]
fn an_expression_longer_than_the_limit_is_refused_with_its_length() {
    let long = format!("inputs.ref == '{}'", "x".repeat(MAX_BYTES));
    let e = refused(&long);
    assert!(e.message.contains("too long"), "{e:?}");
    assert!(e.message.contains(&format!("at most {MAX_BYTES}")), "{e:?}");
    assert!(e.fix.contains("output"), "{e:?}");
    assert!(render(&format!("${{{{ {long} }}}}"), &Vars::default()).is_err());
    let fits = format!("inputs.ref == '{}'", "x".repeat(MAX_BYTES - 20));
    assert!(check(&fits, &scope()).is_ok());
}

#[test]
fn nested_comprehensions_that_may_take_too_long_are_refused() {
    let ten = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]";
    let mut e = "v0 == 10".to_string();
    for level in 0..3 {
        e = format!("{ten}.exists(v{level}, {e})");
    }
    // 10^3 iterations of a small body: fine.
    check(&e, &scope()).unwrap();
    assert!(!eval_bool(&e, &Vars::default()).unwrap());
    // 10^6: refused before it runs, saying why and how to fix it.
    for level in 3..6 {
        e = format!("{ten}.exists(v{level}, {e})");
    }
    let refusal = refused(&e);
    assert!(
        refusal.message.contains("too long to evaluate"),
        "{refusal:?}"
    );
    assert!(refusal.fix.contains("comprehensions"), "{refusal:?}");
    assert!(
        eval_bool(&e, &Vars::default())
            .unwrap_err()
            .contains("too long")
    );
    // A variable's size is not known before the run: assumed small, and nested it adds up.
    let over_outputs = "jobs.build.outputs.all(a, jobs.build.outputs.all(b, jobs.build.outputs.all(c, a + b + c != '')))";
    assert!(
        refused(over_outputs)
            .message
            .contains("too long to evaluate")
    );
}

#[test]
fn a_template_trims_only_what_cel_skips_so_it_runs_what_check_accepts() {
    // Found by the fuzz run: a vertical tab is not CEL whitespace, so `check` refused
    // this, yet the template trimmed it with `str::trim` and rendered.
    let source = "inputs.ref == 'main'\x0b";
    assert!(check(source, &scope()).is_err());
    let vars = Vars {
        inputs: [("ref".to_string(), "main".to_string())].into(),
        ..Vars::default()
    };
    assert!(render(&format!("${{{{ {source} }}}}"), &vars).is_err());
    assert_eq!(
        render("${{ \t inputs.ref\r\n }}", &vars).unwrap(),
        "main",
        "CEL's own whitespace is still trimmed"
    );
}

#[test]
fn matches_patterns_are_literal_and_small() {
    check("inputs.ref.matches('^v[0-9]+$')", &scope()).expect("a small literal pattern");
    check("matches(inputs.ref, 'a|b')", &scope()).expect("the global form");
    // Short to write, seconds and megabytes to compile: refused before it is compiled.
    let e = refused("(inputs.ref).matches('.{1000}{1000}')");
    assert!(e.message.contains("too large"), "{e:?}");
    assert!(e.fix.contains("smaller pattern"), "{e:?}");
    let e = refused("inputs.ref.matches('(unclosed')");
    assert!(
        e.message.contains("not a valid regular expression"),
        "{e:?}"
    );
    let e = refused("inputs.ref.matches(inputs.ref)");
    assert!(e.message.contains("must be a quoted string"), "{e:?}");
    // Inside a comprehension too.
    let e = refused("['a'].exists(x, x.matches('.{1000}{1000}'))");
    assert!(e.message.contains("too large"), "{e:?}");
}
