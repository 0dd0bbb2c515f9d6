import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * Temporal's time-skipping test server for workflow unit tests (`TestWorkflowEnvironment.createTimeSkipping`).
 *
 * The SDK downloads it from temporal.download, which machines that reach only package registries cannot.
 * The same server is published by Temporal on Maven Central as `io.temporal:temporal-test-server` (a jar run
 * with Java), so it is resolved there with Maven and started through a small launcher script that the SDK runs
 * as an `existing-path` executable (it passes the port as the first argument, as to the native binary).
 * TEMPORAL_TEST_SERVER_PATH overrides all this with any test server executable.
 */
export const TEST_SERVER_VERSION = '1.32.0';
const DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.6.1';

const execFileP = promisify(execFile);

/** `<cache>/temporal-test-server-<version>`, next to the Temporal CLI's folder (see lib/temporal/cli.ts). */
function cacheDir(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : undefined;
  const root = env.NEUROGRID_CACHE_DIR || path.join(xdg ?? path.join(os.homedir(), '.cache'), 'neurogrid');
  return path.resolve(root, `temporal-test-server-${TEST_SERVER_VERSION}`);
}

async function which(name: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const file = path.join(dir, name);
    if (
      await fs.access(file, fs.constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return file;
  }
  return undefined;
}

/** True when the launcher exists and every jar on its classpath is still in the Maven repository. */
async function launcherIsComplete(launcher: string, classpathFile: string): Promise<boolean> {
  try {
    await fs.access(launcher, fs.constants.X_OK);
    const jars = (await fs.readFile(classpathFile, 'utf8')).trim().split(path.delimiter);
    for (const jar of jars) await fs.access(jar);
    return jars.length > 0;
  } catch {
    return false;
  }
}

/**
 * The path of a time-skipping test server executable, resolving it with Maven the first time (~35 MB of jars
 * into ~/.m2; later calls only check the cache).
 * @throws with what to install when Java or Maven is missing.
 */
export async function locateTimeSkippingServer(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.TEMPORAL_TEST_SERVER_PATH) return path.resolve(env.TEMPORAL_TEST_SERVER_PATH);
  const dir = cacheDir(env);
  const launcher = path.join(dir, 'temporal-test-server');
  const classpathFile = path.join(dir, 'classpath.txt');
  if (await launcherIsComplete(launcher, classpathFile)) return launcher;

  const java = env.JAVA_HOME ? path.join(env.JAVA_HOME, 'bin', 'java') : await which('java', env);
  const mvn = await which('mvn', env);
  if (!java || !mvn) {
    throw new Error(
      `the time-skipping test server needs ${java ? '' : 'Java and '}Maven to be resolved from Maven Central ` +
        '(apt-get install default-jre-headless maven), or TEMPORAL_TEST_SERVER_PATH set to a test server executable',
    );
  }
  await fs.mkdir(dir, { recursive: true });
  const pom = path.join(dir, 'pom.xml');
  await fs.writeFile(
    pom,
    `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>neurogrid.local</groupId>
  <artifactId>temporal-test-server-launcher</artifactId>
  <version>0</version>
  <dependencies>
    <dependency>
      <groupId>io.temporal</groupId>
      <artifactId>temporal-test-server</artifactId>
      <version>${TEST_SERVER_VERSION}</version>
    </dependency>
  </dependencies>
</project>
`,
  );
  // Written beside the final files and renamed into place, so a killed run never leaves a half launcher.
  const tmpClasspath = `${classpathFile}.${process.pid}.tmp`;
  try {
    await execFileP(
      mvn,
      ['-q', '-B', '-f', pom, `${DEPENDENCY_PLUGIN}:build-classpath`, `-Dmdep.outputFile=${tmpClasspath}`],
      { timeout: 10 * 60_000, maxBuffer: 16 * 1024 * 1024 },
    );
  } catch (err) {
    const e = err as { stdout?: string; message: string };
    throw new Error(`mvn could not resolve io.temporal:temporal-test-server:${TEST_SERVER_VERSION}: ${e.message}
${(e.stdout ?? '').slice(-2000)}`);
  }
  const tmpLauncher = `${launcher}.${process.pid}.tmp`;
  await fs.writeFile(
    tmpLauncher,
    `#!/bin/sh
# Temporal time-skipping test server ${TEST_SERVER_VERSION} (Maven Central); first argument: the port.
exec "${java}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$(cat "${classpathFile}")" io.temporal.testserver.TestServer "$@"
`,
    { mode: 0o755 },
  );
  await fs.rename(tmpClasspath, classpathFile);
  await fs.rename(tmpLauncher, launcher);
  return launcher;
}
