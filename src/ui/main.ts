import { mount } from 'svelte';
import App from './App.svelte';
import './app.css';
import { registerServiceWorker } from '../sw/register.ts';

const target = document.getElementById('app');
if (!target) throw new Error('index.html has no #app element');
export default mount(App, { target });

// Offline cold start: the built app's shell is cached by sw.js (never under the dev server).
if (import.meta.env.PROD) registerServiceWorker();
