//! Measured numbers form a DAG: `a + a` shares `a`. A long chain of such
//! sums must run in linear time (it once took exponential time and memory)
//! and give the right value.

use safetensors::tensor::TensorView;
use safetensors::Dtype;

#[test]
fn a_chain_of_shared_measured_numbers_is_evaluated_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, vec![3, 4], &bytes).unwrap();
    safetensors::serialize_to_file([("w", view)], None, &dir.path().join("w.safetensors")).unwrap();
    let mut program = String::from("let w = load(\"w.safetensors\")\nlet a0 = norm(w)\n");
    for i in 1..=60 {
        program.push_str(&format!("let a{i} = a{} + a{}\n", i - 1, i - 1));
    }
    program.push_str("eval x = a60\n");
    let path = dir.path().join("chain.tv");
    std::fs::write(&path, program).unwrap();
    let mut sources = tv::diag::Sources::default();
    let plan = tv::check(&mut sources, &path, &tv::Overrides::default()).expect("check");
    let summary = tv::exec::summarize(&plan, 1);
    assert_eq!(
        summary.gram_measures + summary.direct_measures,
        1,
        "one measurement under the chain"
    );
    let output = tv::execute(&plan, false).expect("run");
    let norm: f64 = values.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
    let x: f64 = output.csv().lines().nth(1).unwrap().parse().unwrap();
    let expected = norm * 2f64.powi(60);
    assert!((x - expected).abs() <= 1e-12 * expected, "{x} vs {expected}");
}
