//! The schedule, clipping and AdamW against a scalar f64 optimizer.

use super::*;
use candle_core::Device;

/// A scalar AdamW in f64, written from PyTorch's documentation.
struct ScalarAdam {
    params: Vec<Vec<f64>>,
    m: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
}

impl ScalarAdam {
    fn step(&mut self, grads: &[Vec<f64>], lr: f64, wd: f64, t: i32) {
        for (i, g) in grads.iter().enumerate() {
            for (j, g) in g.iter().enumerate() {
                let p = &mut self.params[i][j];
                *p *= 1.0 - lr * wd;
                self.m[i][j] = 0.9 * self.m[i][j] + 0.1 * g;
                self.v[i][j] = 0.999 * self.v[i][j] + 0.001 * g * g;
                let m_hat = self.m[i][j] / (1.0 - 0.9f64.powi(t));
                let v_hat = self.v[i][j] / (1.0 - 0.999f64.powi(t));
                *p -= lr * m_hat / (v_hat.sqrt() + 1e-8);
            }
        }
    }
}

/// Per tensor, `max |a - b| <= 1e-5 max |b|` (floored at 1e-3).
fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    let worst = got.iter().zip(want).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst <= 1e-5 * scale, "{what}: differs by {worst} (scale {scale})");
}

#[test]
fn the_schedule_warms_up_then_falls_linearly() {
    let factors: Vec<f64> = (0..12).map(|s| adamw::schedule(s, 10, 4)).collect();
    let want = [
        0.0,
        0.25,
        0.5,
        0.75,
        1.0,
        5.0 / 6.0,
        4.0 / 6.0,
        0.5,
        2.0 / 6.0,
        1.0 / 6.0,
        0.0,
        0.0,
    ];
    for (got, want) in factors.iter().zip(want) {
        assert!((got - want).abs() < 1e-15, "{factors:?}");
    }
    assert_eq!(adamw::schedule(0, 3, 0), 1.0);
    assert_eq!(adamw::schedule(5, 3, 9), 5.0 / 9.0);
}

/// Three steps with warmup (the first at learning rate 0), clipping that
/// bites, weight decay and accumulation, against the scalar AdamW fed the
/// same gradients, clipped and scheduled by the test itself.
#[test]
fn steps_equal_a_scalar_adamw_with_clipping_and_schedule() {
    let (config, tensors) = tiny_llama(40, 32, 1, 2);
    let args = TrainArgs {
        steps: 3,
        warmup: 2,
        clip: 0.5,
        weight_decay: 0.1,
        ..args(3)
    };
    let mut trainer = Trainer::new(&config, &tensors, &args, &Device::Cpu).unwrap();
    let params: Vec<Vec<f64>> = trainer.trained_values().iter().map(values).collect();
    let zeros: Vec<Vec<f64>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let mut scalar = ScalarAdam {
        params,
        m: zeros.clone(),
        v: zeros,
    };
    let all = random_windows(12, 8, 40, 4);
    let mut clipped = false;
    for (s, chunk) in all.chunks(4).enumerate() {
        let micro = vec![slices(&chunk[..2]), slices(&chunk[2..])];
        let (_, grads) = trainer.gradients(&micro).unwrap();
        let mut grads: Vec<Vec<f64>> = grads.iter().map(|g| values(g.as_ref().unwrap())).collect();
        let total = grads.iter().map(|g| norm(g).powi(2)).sum::<f64>().sqrt();
        let factor = (0.5 / (total + 1e-6)).min(1.0);
        clipped |= factor < 1.0;
        grads.iter_mut().flatten().for_each(|g| *g *= factor);
        let lr = 1e-2 * [0.0, 0.5, 1.0][s];
        scalar.step(&grads, lr, 0.1, s as i32 + 1);
        trainer.step(&micro).unwrap();
        for ((name, got), want) in trainer
            .trained_names()
            .iter()
            .zip(trainer.trained_values())
            .zip(&scalar.params)
        {
            assert_close(&format!("step {s} {name}"), &values(&got), want);
        }
    }
    assert!(clipped, "the test should clip");
}
