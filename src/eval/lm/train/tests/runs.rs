//! Whole runs: learning, determinism, errors, memory and speed.

use super::*;
use candle_core::{DType, Device, Tensor};

fn repetitive(tokens: usize, period: u32) -> Vec<Vec<u32>> {
    vec![(0..tokens as u32).map(|i| (i * 7 + 3) % period).collect()]
}

#[test]
fn the_loss_falls_on_a_repetitive_text() {
    let (config, tensors) = tiny_llama(64, 32, 2, 3);
    let args = TrainArgs {
        steps: 30,
        context: 16,
        batch: 4,
        accumulate: 1,
        warmup: 3,
        ..args(30)
    };
    let mut losses = Vec::new();
    finetune(
        &config,
        &tensors,
        &repetitive(800, 11),
        &args,
        &Device::Cpu,
        &mut |_, loss, _| losses.push(loss),
    )
    .unwrap();
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last < 0.2 * first, "{losses:?}");
}

/// Same seed, same bytes; another seed, another run.
#[test]
fn runs_are_deterministic_for_a_seed() {
    let (config, tensors) = tiny_llama(40, 32, 1, 4);
    let docs = repetitive(300, 13);
    let run = |seed: u64, lora: Option<Lora>| {
        let args = TrainArgs { seed, lora, ..args(4) };
        let mut trace = Vec::new();
        let weights = finetune(&config, &tensors, &docs, &args, &Device::Cpu, &mut |s, l, t| {
            trace.push((s, l, t))
        })
        .unwrap();
        let mut names: Vec<&String> = weights.keys().collect();
        names.sort();
        let bytes: Vec<Vec<f64>> = names.iter().map(|n| values(&weights[*n])).collect();
        (trace, bytes)
    };
    for lora in [None, Some(Lora::new(2))] {
        let (trace, bytes) = run(7, lora.clone());
        assert_eq!(
            trace.iter().map(|t| (t.0, t.2)).collect::<Vec<_>>(),
            [(1, 32), (2, 64), (3, 96), (4, 128)]
        );
        assert_eq!(run(7, lora.clone()), (trace.clone(), bytes.clone()));
        assert_ne!(run(8, lora).1, bytes);
    }
}

#[test]
fn bad_settings_and_data_are_errors() {
    let (config, tensors) = tiny_llama(40, 32, 1, 5);
    let docs = repetitive(100, 13);
    let run =
        |args: TrainArgs, docs: &[Vec<u32>]| finetune(&config, &tensors, docs, &args, &Device::Cpu, &mut |_, _, _| {});
    let cases: Vec<(TrainArgs, &str)> = vec![
        (TrainArgs { batch: 0, ..args(1) }, "`batch`"),
        (TrainArgs { steps: 0, ..args(1) }, "`steps`"),
        (TrainArgs { context: 1, ..args(1) }, "at least 2"),
        (
            TrainArgs {
                context: 1000,
                ..args(1)
            },
            "positions",
        ),
        (
            TrainArgs {
                lr: f64::NAN,
                ..args(1)
            },
            "`lr`",
        ),
        (TrainArgs { clip: -1.0, ..args(1) }, "`clip`"),
        (lora_args(0, "*"), "rank"),
        (lora_args(2, "*nothing*"), "matches"),
    ];
    for (args, message) in cases {
        let error = run(args, &docs).unwrap_err();
        assert!(error.contains(message), "{error}");
    }
    assert!(run(args(1), &[]).unwrap_err().contains("0 tokens"));
    assert!(run(args(1), &[vec![1, 2, 3]])
        .unwrap_err()
        .contains("fewer than one window"));
    assert!(run(args(1), &[vec![5; 20], vec![40; 8]])
        .unwrap_err()
        .contains("vocabulary"));
    let mut trainer = Trainer::new(&config, &tensors, &args(1), &Device::Cpu).unwrap();
    let bad: Vec<u32> = vec![99; 8];
    assert!(trainer
        .step(&[vec![bad.as_slice()]])
        .unwrap_err()
        .contains("vocabulary"));
    assert!(trainer.step(&[vec![&bad[..3]]]).unwrap_err().contains("not 8"));
    assert!(trainer.step(&[]).is_err() && trainer.step(&[vec![]]).is_err());
    let mut missing = tensors.clone();
    missing.remove("model.norm.weight");
    let error = |tensors: &Tensors| Trainer::new(&config, tensors, &args(1), &Device::Cpu).err().unwrap();
    assert!(error(&missing).contains("model.norm.weight"));
    let mut wrong = tensors.clone();
    wrong.insert(
        "model.norm.weight".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    assert!(error(&wrong).contains("[3]"));
}

#[test]
fn the_memory_estimate_grows_with_the_work() {
    let (config, _) = tiny_llama(2048, 128, 4, 1);
    let p = config.parameters();
    let base = memory_estimate(&config, p, &args(1));
    assert!(base > 16 * p);
    assert!(memory_estimate(&config, p, &TrainArgs { batch: 8, ..args(1) }) > base);
    assert!(memory_estimate(&config, p, &lora_args(4, "*")) < base);
}

/// Milliseconds per step of a small model on this machine's cores (run
/// with `--ignored --nocapture`).
#[test]
#[ignore]
fn speed_of_a_small_model() {
    let (config, tensors) = tiny_llama(2048, 128, 4, 1);
    let args = TrainArgs {
        steps: 6,
        context: 128,
        batch: 8,
        accumulate: 1,
        ..args(6)
    };
    let docs = vec![random_windows(1, 20_000, 2048, 1).concat()];
    for lora in [None, Some(Lora::new(8))] {
        let args = TrainArgs { lora, ..args.clone() };
        let mut times = Vec::new();
        let mut last = std::time::Instant::now();
        finetune(&config, &tensors, &docs, &args, &Device::Cpu, &mut |_, _, _| {
            times.push(last.elapsed().as_secs_f64() * 1e3);
            last = std::time::Instant::now();
        })
        .unwrap();
        println!("lora {:?}: ms per step {times:.0?}", args.lora.map(|l| l.rank));
    }
}
