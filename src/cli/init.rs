//! `orcaops init [DIR]`: a starter folder to serve or sync, and a README with the next
//! commands. It never overwrites a file: what exists is skipped and named. It asks
//! nothing; `--template` picks a smaller starter.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::client::{ClientError, exit};

pub const AFTER_HELP: &str = "\
Examples:
  orcaops init my-jobs                     # every starter: a job, a workflow, a sandbox template, a workspace
  orcaops init --template ci               # a job and a workflow with a matrix and an approval
  orcaops init --template agents           # a sandbox template with a warm pool, held to a policy
  orcaops init --template sandbox          # a sandbox template and a sandbox made from it

Then: orcaops serve --dir my-jobs   (the folder's README says what to try next)";

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The folder to write into (made if missing; files in it are never overwritten).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Which starter to write.
    #[arg(long, value_enum, default_value = "all")]
    pub template: Template,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// A job, a workflow, a sandbox template with a warm pool, and a workspace with a policy.
    All,
    /// A job and a workflow (a matrix and an approval), in a workspace with a policy.
    Ci,
    /// A sandbox template with a warm pool for agents, in a workspace with a policy.
    Agents,
    /// A sandbox template and a sandbox made from it.
    Sandbox,
}

const JOB: (&str, &str) = (
    "hello-job.yaml",
    r#"# A Job: one container, its steps run in order. Served, it runs once; edit and save
# this file to run it again. Try: orcaops logs job hello, orcaops describe job hello.
apiVersion: orcaops.dev/v1alpha1
kind: Job
metadata:
  name: hello
spec:
  image: busybox:latest
  timeoutSeconds: 60
  steps:
    - name: greet
      run: echo "hello from $(hostname)"
    - name: count
      run: for i in 1 2 3; do echo "step two, line $i"; done
"#,
);

const WORKFLOW: (&str, &str) = (
    "ci-workflow.yaml",
    r#"# A Workflow: Jobs in a DAG. `test` runs once per matrix value after `build`, then
# `release` waits for a person: orcaops approve workflow ci release (or --reject).
# Follow it with: orcaops describe workflow ci.
apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: ci
spec:
  jobs:
    - name: build
      job:
        image: busybox:latest
        timeoutSeconds: 120
        steps:
          - name: compile
            run: echo "version=1.0.${{ workflow.run }}" >> "$ORCAOPS_OUTPUT"
    - name: test
      needs: [build]
      matrix:
        suite: [unit, integration]
      job:
        image: busybox:latest
        timeoutSeconds: 120
        steps:
          - name: test
            run: echo "testing ${{ jobs.build.outputs.version }}, suite ${{ matrix.suite }}"
    - name: release
      needs: [test]
      approval:
        message: "Release ${{ jobs.build.outputs.version }}?"
      job:
        image: busybox:latest
        timeoutSeconds: 60
        steps:
          - name: tag
            run: echo "released ${{ jobs.build.outputs.version }}"
"#,
);

const TEMPLATE: (&str, &str) = (
    "shell-template.yaml",
    r#"# A SandboxTemplate: a ready-made environment. Its warm pool keeps one started, so a
# Sandbox naming it is Ready at once: orcaops exec NAME -- sh, orcaops cp, and it
# stops by itself after 15 idle minutes.
apiVersion: orcaops.dev/v1alpha1
kind: SandboxTemplate
metadata:
  name: shell
spec:
  idleTimeoutSeconds: 900
  ttlSeconds: 14400
  onExpiry: Stop
  network: none
  warmPool:
    size: 1
    maxSize: 3
  services:
    - name: shell
      image: busybox:latest
      command: ["sleep", "infinity"]
      workingDir: /work
      resources:
        cpu: "1"
        memory: 256Mi
"#,
);

const SANDBOX: (&str, &str) = (
    "scratch-sandbox.yaml",
    r#"# A Sandbox made from the template `shell`: try orcaops exec scratch -- uname -a.
apiVersion: orcaops.dev/v1alpha1
kind: Sandbox
metadata:
  name: scratch
spec:
  templateRef: shell
"#,
);

const WORKSPACE: (&str, &str) = (
    "workspace.yaml",
    r#"# The workspace `default` (where the files above go), with quotas, and a Policy it
# lists. Warn mode accepts a write that breaks a rule, with a Warning line saying
# which; Enforce would refuse it. orcaops describe workspace default shows the use.
apiVersion: orcaops.dev/v1alpha1
kind: Workspace
metadata:
  name: default
spec:
  quotas:
    concurrentJobs: 4
    sandboxes: 4
  policies: [starter-limits]
---
apiVersion: orcaops.dev/v1alpha1
kind: Policy
metadata:
  name: starter-limits
spec:
  mode: Warn
  maxTimeoutSeconds: 3600
  commands:
    deny: ["*rm -rf /*"]
"#,
);

impl Template {
    pub(super) fn files(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Template::All => vec![JOB, WORKFLOW, TEMPLATE, WORKSPACE],
            Template::Ci => vec![JOB, WORKFLOW, WORKSPACE],
            Template::Agents => vec![TEMPLATE, WORKSPACE],
            Template::Sandbox => vec![TEMPLATE, SANDBOX],
        }
    }

    /// What to try once the folder is served, one command a line.
    fn tour(self) -> &'static str {
        match self {
            Template::All | Template::Ci => {
                "orcaops get jobs                      # hello, and the workflow's jobs\n\
                 orcaops logs job hello                # what it printed\n\
                 orcaops approve workflow ci release   # let the workflow finish\n"
            }
            Template::Agents => {
                "orcaops get sandboxtemplates          # the pool's depth\n\
                 orcaops apply -f - <<< '{\"apiVersion\": \"orcaops.dev/v1alpha1\", \"kind\": \"Sandbox\", \"metadata\": {\"name\": \"agent-1\"}, \"spec\": {\"templateRef\": \"shell\"}}'\n\
                 orcaops exec agent-1 -- sh -c 'echo 42'\n"
            }
            Template::Sandbox => {
                "orcaops get sandboxes                 # scratch, Ready\n\
                 orcaops exec scratch -- uname -a      # a command inside it\n\
                 orcaops cp ./somefile scratch:/work/  # a file in\n"
            }
        }
    }
}

fn readme(template: Template, dir: &Path) -> String {
    let files: String = template
        .files()
        .iter()
        .map(|(name, _)| format!("- `{name}`\n"))
        .collect();
    format!(
        "# An orcaops folder\n\n\
         Made by `orcaops init`. Each file declares resources; orcaops keeps what runs in\n\
         step with them.\n\n{files}\n\
         ## Next\n\n\
         Serve the folder (Docker must be running), and leave it running:\n\n\
         ```sh\norcaops serve --dir {dir}\n```\n\n\
         Then, in another shell:\n\n```sh\n{tour}```\n\n\
         Edit a file and save it: the change is applied. Delete a file: what it declared\n\
         goes. `orcaops --help` lists every command; the docs are in the project's `docs/`.\n",
        dir = dir.display(),
        tour = template.tour(),
    )
}

/// Writes the starter of `args.template` into `args.dir`, skipping what exists.
pub fn init(args: &InitArgs) -> Result<u8, ClientError> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).map_err(|e| {
        ClientError::usage(format!(
            "cannot make {}: {e}; choose another folder",
            dir.display()
        ))
    })?;
    let readme = readme(args.template, dir);
    let mut files: Vec<(&str, &str)> = args.template.files();
    files.push(("README.md", &readme));
    let (mut created, mut skipped) = (Vec::new(), Vec::new());
    for (name, content) in files {
        let path = dir.join(name);
        // `create_new`: a file that appears meanwhile is not overwritten either.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, content.as_bytes()));
        match written {
            Ok(()) => created.push(name),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => skipped.push(name),
            Err(e) => {
                return Err(ClientError::usage(format!(
                    "cannot write {}: {e}",
                    path.display()
                )));
            }
        }
    }
    for name in &created {
        println!("created {}", dir.join(name).display());
    }
    for name in &skipped {
        println!(
            "skipped {} (it exists; nothing was changed)",
            dir.join(name).display()
        );
    }
    println!(
        "\nNext: orcaops serve --dir {}\nthen see {}",
        dir.display(),
        dir.join("README.md").display()
    );
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::parse::parse_documents;
    use crate::resources::validate::validate;

    /// Every starter file parses and is valid, as `apply` would check it.
    #[test]
    fn every_starter_file_is_valid() {
        for (name, content) in [JOB, WORKFLOW, TEMPLATE, SANDBOX, WORKSPACE] {
            let documents = parse_documents(name, content);
            assert!(!documents.is_empty(), "{name}");
            for document in documents {
                let obj = document.unwrap_or_else(|e| panic!("{name}: {e}"));
                let problems = validate(&obj);
                assert!(problems.is_empty(), "{name}: {problems:?}");
            }
        }
    }

    #[test]
    fn each_template_has_its_files_and_a_tour() {
        for template in [
            Template::All,
            Template::Ci,
            Template::Agents,
            Template::Sandbox,
        ] {
            let readme = readme(template, Path::new("my-jobs"));
            assert!(readme.contains("orcaops serve --dir my-jobs"), "{readme}");
            for (name, _) in template.files() {
                assert!(readme.contains(name), "{template:?}: {name}");
            }
        }
        assert_eq!(Template::All.files().len(), 4);
    }
}
