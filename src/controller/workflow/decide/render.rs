//! A node's Job spec with its `${{ }}` templates rendered: in the image, each step's
//! `run` and `command`, and env values (what validation checked).

use crate::resources::expr::{self, Vars};
use crate::resources::job::JobSpec;

/// `job` with every template replaced by its value; the error names the field.
pub fn job_spec(job: &JobSpec, vars: &Vars) -> Result<JobSpec, String> {
    let mut job = job.clone();
    let at = |field: String| move |e: String| format!("{field}: {e}");
    job.image = expr::render(&job.image, vars).map_err(at("job.image".into()))?;
    for (s, step) in job.steps.iter_mut().enumerate() {
        if let Some(run) = &mut step.run {
            *run = expr::render(run, vars).map_err(at(format!("job.steps[{s}].run")))?;
        }
        for (a, arg) in step.command.iter_mut().flatten().enumerate() {
            *arg = expr::render(arg, vars).map_err(at(format!("job.steps[{s}].command[{a}]")))?;
        }
    }
    for (e, var) in job.env.iter_mut().enumerate() {
        var.value = expr::render(&var.value, vars).map_err(at(format!("job.env[{e}].value")))?;
    }
    Ok(job)
}
