//! `printf 'pear\napple\nfig\n' | sort | head -n 2`: the two lines and every stage's status.
//!
//! ```text
//! cargo run --example pipeline
//! ```

use popen::{Command, RunOptions};
use std::error::Error;
use std::time::Duration;

fn main() -> Result<(), Box<dyn Error>> {
    let out = Command::new("printf")
        .arg("pear\\napple\\nfig\\n")
        .pipe(Command::new("sort"))
        .pipe(Command::new("head").args(["-n", "2"]))
        .run(
            &RunOptions::new()
                .capture_stdout()
                .timeout(Duration::from_secs(10))
                .check(),
        )?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    for (args, status) in out.args.iter().zip(out.status.stages()) {
        println!("{:<16} {status}", args[0].to_string_lossy());
    }
    println!(
        "last: {}, pipefail: {}, all succeeded: {}",
        out.status.last(),
        out.status.pipefail(),
        out.status.all_success()
    );
    Ok(())
}
